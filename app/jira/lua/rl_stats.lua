--! needs: clock effective_rate
-- KEYS: grants, pause, slow, backoff, cfg, wait_user, alive_user, wait_batch, alive_batch. ARGV: recover.
local rate = tonumber(redis.call('HGET', KEYS[5], 'rate') or '0')
local eff, factor = effective(rate, KEYS[4], KEYS[3], tonumber(ARGV[1]))
local per_second = {}
for i = 1, 10 do
  per_second[i] = redis.call('ZCOUNT', KEYS[1], '(' .. fmt(now - i * 1000000), fmt(now - (i - 1) * 1000000))
end
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
return {
  fmt(now), tostring(rate), tostring(eff), tostring(factor), redis.call('EXISTS', KEYS[3]),
  math.max(0, math.floor(pause - now)),
  redis.call('ZCOUNT', KEYS[7], '(' .. fmt(now), '+inf'), redis.call('ZCOUNT', KEYS[9], '(' .. fmt(now), '+inf'),
  redis.call('ZCOUNT', KEYS[1], '(' .. fmt(now), '+inf'),
  per_second,
}
