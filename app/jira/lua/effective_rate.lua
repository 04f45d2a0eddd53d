-- Effective rate from the configured rate, the 429 backoff factor and the low-remaining slowdown.
local function effective(rate, backoff_key, slow_key, recover)
  local factor = 1.0
  local b = redis.call('HMGET', backoff_key, 'f', 'at')
  if b[1] then
    factor = math.min(1.0, tonumber(b[1]) + recover * (now - tonumber(b[2])) / 1000000)
  end
  if redis.call('EXISTS', slow_key) == 1 then factor = factor * 0.5 end
  return math.max(rate * factor, 0.01), factor
end
