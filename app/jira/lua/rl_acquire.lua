--! needs: clock effective_rate
-- KEYS: grants, pause, slow, backoff, cfg, wait_user, alive_user, wait_batch, alive_batch
-- ARGV: rate, priority, waiter, margin_us, started_us, max_poll_us, grace_us, recover_per_s, max_horizon_us
-- Returns {granted, delay_us, started_us, slot}: granted → sleep delay_us then send; refused → sleep, retry.
local rate = tonumber(ARGV[1])
local prio = tonumber(ARGV[2])
local waiter = ARGV[3]
local margin = tonumber(ARGV[4])
local started = tonumber(ARGV[5])
local max_poll = tonumber(ARGV[6])
local grace = tonumber(ARGV[7])
local recover = tonumber(ARGV[8])
local max_horizon = tonumber(ARGV[9])
if started <= 0 then started = now end

-- the most recently started acquire carries the freshest rate_limit_per_second
local cfg = redis.call('HMGET', KEYS[5], 'rate', 'since')
local since = tonumber(cfg[2])
if since == nil or started > since then
  redis.call('HSET', KEYS[5], 'rate', ARGV[1], 'since', fmt(started))
elseif started < since then
  rate = tonumber(cfg[1])
end
redis.call('PEXPIRE', KEYS[5], 3600000)

-- waiters whose heartbeat deadline passed (crashed or cancelled processes) no longer count
local sets = {{KEYS[6], KEYS[7]}, {KEYS[8], KEYS[9]}}
for _, s in ipairs(sets) do
  local dead = redis.call('ZRANGEBYSCORE', s[2], '-inf', fmt(now))
  if #dead > 0 then
    redis.call('ZREM', s[1], unpack(dead))
    redis.call('ZREMRANGEBYSCORE', s[2], '-inf', fmt(now))
  end
end

local eff = effective(rate, KEYS[4], KEYS[3], recover)
local window = 1000000 + margin
local interval = window / eff
local limit = math.max(1, math.floor(eff + 1e-9))
local horizon = math.min(interval, max_horizon)
local keep = math.max(10000000, 2 * interval + window)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. fmt(now - keep))

-- earliest slot: not before now, the end of a pause, one interval after the last slot, and such that the
-- window (slot - W, slot] holds fewer than `limit` earlier slots
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
local slot = math.max(now, pause)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then slot = math.max(slot, tonumber(last[2]) + interval) end
local recent = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. fmt(slot - window), '+inf', 'WITHSCORES')
local n = #recent / 2
if n >= limit then
  slot = math.max(slot, tonumber(recent[2 * (n - limit + 1)]) + window)
end
slot = math.ceil(slot)

local wait_key, alive_key = KEYS[6], KEYS[7]
if prio ~= 0 then wait_key, alive_key = KEYS[8], KEYS[9] end
local users = redis.call('ZCARD', KEYS[6])
local blocked = prio ~= 0 and users > 0

if not blocked and slot - now <= horizon then
  redis.call('ZADD', KEYS[1], fmt(slot), fmt(slot))
  redis.call('PEXPIRE', KEYS[1], math.ceil((keep + slot - now) / 1000))
  redis.call('ZREM', wait_key, waiter)
  redis.call('ZREM', alive_key, waiter)
  return {1, math.floor(slot - now), fmt(started), fmt(slot)}
end

-- refused: queue up and sleep until about our turn
redis.call('ZADD', wait_key, 'NX', fmt(started), waiter)
local ahead = redis.call('ZRANK', wait_key, waiter)
if prio ~= 0 then ahead = ahead + users end
local delay = math.max(slot - now - horizon, 0) + ahead * interval
local cap = max_poll
if pause - now - horizon > cap then cap = pause - now - horizon end
delay = math.max(math.min(delay, cap), 1000)
redis.call('ZADD', alive_key, fmt(now + delay + grace), waiter)
local ttl = math.ceil((delay + grace) / 1000) + 60000
for _, k in ipairs({wait_key, alive_key}) do
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
return {0, math.floor(delay), fmt(started), ''}
