--! needs: clock
-- KEYS: circuit hash. ARGV: reset_us. Returns {state, failures, seconds_until_half_open_us}.
local st = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'failures')
local failures = tonumber(st[3] or '0')
if st[1] ~= 'open' then return {'closed', failures, 0} end
local half_open_at = tonumber(st[2]) + tonumber(ARGV[1])
if now < half_open_at then return {'open', failures, math.floor(half_open_at - now)} end
return {'half_open', failures, 0}
