--! needs: clock
-- One tenant's API requests, all API processes together (CONTRACT 11: TENANT_API_RATE_PER_SECOND).
-- GCRA: one request per `interval` sustained, `burst` at once after a quiet spell.
-- KEYS[1]: the tenant's theoretical arrival time (µs); ARGV[1]: interval (µs); ARGV[2]: burst (requests);
-- ARGV[3]: how many requests the calling API process would like to admit (it holds the extra ones briefly, so
-- most of its requests need no call here; each is charged now, as if it had arrived now); ARGV[4]: admissions it
-- was granted before and did not use (given back first).
-- Returns {granted, 0} with 1 ≤ granted ≤ ARGV[3], or {0, µs until one could go}.
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local want = tonumber(ARGV[3] or '1')
local tat = tonumber(redis.call('GET', KEYS[1]) or now) - interval * tonumber(ARGV[4] or '0')
if tat < now then tat = now end
if tat - tolerance > now then
  return {0, math.ceil(tat - tolerance - now)}
end
local room = math.floor((now + tolerance - tat) / interval) + 1
local granted = math.min(want, room)
tat = tat + granted * interval
redis.call('SET', KEYS[1], fmt(tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return {granted, 0}
