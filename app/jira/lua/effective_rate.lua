-- Effective rate from the configured rate, the 429 backoff factor (`f`, recovering since `at`) and the
-- low-remaining slowdown (halves the rate until `slow_until`), all read from the instance's gate state.
local function effective(rate, f, at, slow_until, recover)
  local factor = 1.0
  if f then
    factor = math.min(1.0, tonumber(f) + recover * (now - tonumber(at)) / 1000000)
  end
  if slow_until and tonumber(slow_until) > now then factor = factor * 0.5 end
  return math.max(rate * factor, 0.01), factor
end
