--! needs: clock
-- KEYS: circuit hash, trial permit. ARGV: reset_us, trial_ttl_ms, permit token, half_open_retry_us.
-- Returns {allowed, retry_in_us, trial, state}.
local st = redis.call('HMGET', KEYS[1], 'state', 'opened_at')
if st[1] ~= 'open' then return {1, 0, 0, 'closed'} end
local half_open_at = tonumber(st[2]) + tonumber(ARGV[1])
if now < half_open_at then return {0, math.floor(half_open_at - now), 0, 'open'} end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', tonumber(ARGV[2])) then return {1, 0, 1, 'half_open'} end
local left = math.max(redis.call('PTTL', KEYS[2]), 1) * 1000
return {0, math.min(left, tonumber(ARGV[4])), 0, 'half_open'}
