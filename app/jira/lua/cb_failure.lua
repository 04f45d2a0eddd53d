--! needs: clock
-- KEYS: circuit hash, trial permit. ARGV: threshold, reset_us, state_ttl_ms. Returns the state after.
local st = redis.call('HMGET', KEYS[1], 'state', 'opened_at')
if st[1] == 'open' then
  if now >= tonumber(st[2]) + tonumber(ARGV[2]) then
    -- half-open: the trial (or a request racing it) failed, JIRA is still down
    redis.call('HSET', KEYS[1], 'opened_at', fmt(now))
    redis.call('DEL', KEYS[2])
  end
  -- while open, late failures of requests sent before it opened change nothing
  return 'open'
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
if failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', fmt(now))
  return 'open'
end
return 'closed'
