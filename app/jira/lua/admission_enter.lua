--! needs: clock
-- KEYS: the instance's lease set. ARGV: lease token, cap, 1 for a user action (always admitted), lease ms.
-- Leases are scored by their expiry (ms, Redis clock), so a killed worker's lease lapses by itself.
local now_ms = math.floor(now / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if tonumber(ARGV[3]) == 1 or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[4]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + 1000)
  return 1
end
return 0
