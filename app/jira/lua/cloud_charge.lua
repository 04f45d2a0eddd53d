--! needs: clock
-- The rest of a Cloud read's cost, once its answer says how many objects it returned (CONTRACT 12: a read costs
-- 1 point plus 1 per object; cloud_admit.lua charged the 1). Charged to the current window: an answer that
-- straddles the hour counts in the new one, as Atlassian counts it when it answers.
-- KEYS: [1] pool points. ARGV: [1] site, [2] points, [3] window_us
local window = tonumber(ARGV[3])
local start = math.floor(now / window) * window
if tonumber(redis.call('HGET', KEYS[1], 'h') or '-1') ~= start then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'h', fmt(start), 'total', '0')
end
redis.call('HINCRBY', KEYS[1], 'total', tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], 's:' .. ARGV[1], tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], math.ceil(2 * window / 1000))
return 1
