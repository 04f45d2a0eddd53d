--! needs: clock
-- KEYS: pause, backoff. ARGV: retry_after_us, repeat_window_us, min_factor, recover_per_s, backoff_ttl_ms.
-- A 429 pauses everyone; a 429 soon after a pause ended (JIRA still unhappy) also halves the rate.
local ra = tonumber(ARGV[1])
local repeat_window = tonumber(ARGV[2])
local min_factor = tonumber(ARGV[3])
local recover = tonumber(ARGV[4])
local pause = tonumber(redis.call('GET', KEYS[1]) or '0')
local b = redis.call('HMGET', KEYS[2], 'f', 'at', 'last')
local factor = 1.0
if b[1] then factor = math.min(1.0, tonumber(b[1]) + recover * (now - tonumber(b[2])) / 1000000) end
if b[3] and now >= pause and now - tonumber(b[3]) < repeat_window then
  factor = math.max(min_factor, factor * 0.5)
end
redis.call('HSET', KEYS[2], 'f', tostring(factor), 'at', fmt(now), 'last', fmt(now))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]))
local until_ = now + ra
if until_ > pause then
  redis.call('SET', KEYS[1], fmt(until_), 'PX', math.ceil(ra / 1000) + 1000)
  pause = until_
end
return math.floor(pause - now)
