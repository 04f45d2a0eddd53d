--! needs: clock effective_rate
-- KEYS: state, grants, wait:user, alive:user, wait:batch, alive:batch. ARGV: recover_per_s.
-- What the dashboard shows: {now, rate, effective rate, factor, slowed, pause left µs, live USER waiters,
-- live BATCH waiters, reserved slots ahead, grants in each of the last 10 seconds}.
local st = redis.call('HMGET', KEYS[1], 'rate', 'f', 'at', 'pause', 'slow')
local rate = tonumber(st[1] or '0')
local eff, factor = effective(rate, st[2], st[3], st[5], tonumber(ARGV[1]))
local per_second = {}
for i = 1, 10 do
  per_second[i] = redis.call('ZCOUNT', KEYS[2], '(' .. fmt(now - i * 1000000), fmt(now - (i - 1) * 1000000))
end
local pause = tonumber(st[4] or '0')
local slowed = 0
if st[5] and tonumber(st[5]) > now then slowed = 1 end
return {
  fmt(now), tostring(rate), tostring(eff), tostring(factor), slowed, math.max(0, math.floor(pause - now)),
  redis.call('ZCOUNT', KEYS[4], '(' .. fmt(now), '+inf'), redis.call('ZCOUNT', KEYS[6], '(' .. fmt(now), '+inf'),
  redis.call('ZCOUNT', KEYS[2], '(' .. fmt(now), '+inf'),
  per_second,
}
