--! needs: clock
-- KEYS: a budget's state hash. ARGV: retry_after_us, repeat_window_us, min_factor, recover_per_s, state_ttl_ms.
-- A 429 pauses every request of the budget; a 429 soon after a pause ended (JIRA still unhappy) also halves the
-- rate (recovering linearly). Returns the µs the pause has left.
local ra = tonumber(ARGV[1])
local repeat_window = tonumber(ARGV[2])
local min_factor = tonumber(ARGV[3])
local recover = tonumber(ARGV[4])
local st = redis.call('HMGET', KEYS[1], 'pause', 'f', 'at', 'last')
local pause = tonumber(st[1] or '0')
local factor = 1.0
if st[2] then factor = math.min(1.0, tonumber(st[2]) + recover * (now - tonumber(st[3])) / 1000000) end
if st[4] and now >= pause and now - tonumber(st[4]) < repeat_window then
  factor = math.max(min_factor, factor * 0.5)
end
if now + ra > pause then pause = now + ra end
redis.call('HSET', KEYS[1], 'f', tostring(factor), 'at', fmt(now), 'last', fmt(now), 'pause', fmt(pause))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
return math.floor(pause - now)
