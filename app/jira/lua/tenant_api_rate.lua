--! needs: clock
-- One tenant's API requests, all API processes together (CONTRACT 11: TENANT_API_RATE_PER_SECOND).
-- GCRA: one request per `interval` sustained, `burst` at once after a quiet spell.
-- KEYS[1]: the tenant's theoretical arrival time (µs); ARGV[1]: interval (µs); ARGV[2]: burst (requests).
-- Returns 0 when the request may go, else the µs until it could.
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - tolerance > now then
  return math.ceil(tat - tolerance - now)
end
tat = tat + interval
redis.call('SET', KEYS[1], fmt(tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return 0
