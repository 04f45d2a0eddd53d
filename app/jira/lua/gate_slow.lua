--! needs: clock
-- KEYS: the instance's gate state. ARGV: slowdown_us, state_ttl_ms.
-- JIRA said its budget is nearly spent (X-RateLimit-Remaining): halve the rate for a moment.
redis.call('HSET', KEYS[1], 'slow', fmt(now + tonumber(ARGV[1])))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
