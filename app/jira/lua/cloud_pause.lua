--! needs: clock
-- A Cloud 429 pauses what its RateLimit-Reason names (the pool, a site's quota, one issue) until now + ARGV[1] µs,
-- never shortening a longer pause already set. KEYS: [1] the pause. Returns the pause left (µs).
local until_ = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > current then
  redis.call('SET', KEYS[1], fmt(until_), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
  current = until_
end
return math.floor(current - now)
