--! needs: clock effective_rate circuit_allow
-- The request gate's one decision (CONTRACT 10.3, 10.8, 10.9), for one request or for a block of requests one
-- process is about to send to one JIRA instance: is its circuit closed, and which slots may the requests have?
--
-- A slot is an instant on Redis' clock. Every budget is a sliding-window log of slots (a sorted set): the
-- instance's own (`rate` per 1 s + margin, slots at least one interval apart) and any further keyed budgets
-- (a per-issue limit, a pool shared by several instances: each a log and a state hash with its own limit and
-- window, and its own `pause`). A slot goes at the earliest instant that every budget allows, after every slot
-- already in each log, so no window of any budget ever holds more than its limit.
--
-- KEYS: [1] state (hash: rate, f, at, last, pause, slow), [2] grants, [3] wait:user, [4] alive:user,
--       [5] wait:batch, [6] alive:batch, [7] circuit hash, [8] circuit trial permit,
--       then per extra budget: grants, state
-- ARGV: [1] rate, [2] priority (0 user, 1 batch), [3] waiter id, [4] margin_us, [5] slots wanted,
--       [6] horizon_us of a single request, [7] max_poll_us, [8] grace_us, [9] recover_per_s,
--       [10] circuit reset_us, [11] trial_ttl_ms, [12] trial token, [13] half_open_retry_us,
--       [14] 0, or 1 if this waiter registered as waiting before, or 2 if it has USER requests left after this
--       call (it is, or stays, registered as a USER waiter, so BATCH elsewhere keeps yielding), [15] member tag,
--       [16] number of corrections, then (member, moved slot) pairs: requests that left later than their slots,
--       then the number of extra budgets, then (limit, window_us) pairs
-- Returns {code, delay_us, failures, earliest_us, slot...}:
--   1 granted: the slots (members; the score is the part before '@'), the first one delay_us from now
--   3 granted as the half-open circuit's single trial (one slot)
--   0 refused: ask again after delay_us (registered as a waiter; the earliest slot is earliest_us away)
--   2 circuit open (or its trial taken): ask again after delay_us
local rate = tonumber(ARGV[1])
local prio = tonumber(ARGV[2])
local waiter = ARGV[3]
local margin = tonumber(ARGV[4])
local want = tonumber(ARGV[5])
local single_horizon = tonumber(ARGV[6])
local max_poll = tonumber(ARGV[7])
local grace = tonumber(ARGV[8])
local recover = tonumber(ARGV[9])
local queued = tonumber(ARGV[14]) >= 1
local keep = tonumber(ARGV[14]) == 2
local tag = ARGV[15]

-- nothing is reserved for a JIRA whose circuit is open; a half-open one gets exactly one trial request
local allowed, retry_us, trial, _, failures = circuit_allow(
  KEYS[7], KEYS[8], tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12], tonumber(ARGV[13]))
if allowed == 0 then return {2, retry_us, failures, retry_us} end
if trial == 1 then want = 1 end

-- requests of this process that left later than their slots: each slot moves to when its request left, so
-- every later grant's window check counts it where JIRA sees it arrive
local a = 16
local n_moved = tonumber(ARGV[a])
a = a + 1
local budgets = {{KEYS[2], KEYS[1]}}
local n_extra_at = a + 2 * n_moved
local n_extra = tonumber(ARGV[n_extra_at])
for b = 1, n_extra do
  budgets[b + 1] = {KEYS[8 + 2 * b - 1], KEYS[8 + 2 * b],
                    tonumber(ARGV[n_extra_at + 2 * b - 1]), tonumber(ARGV[n_extra_at + 2 * b])}
end
if n_moved > 0 then
  local moves = {}
  for m = 0, n_moved - 1 do
    moves[#moves + 1] = ARGV[a + 2 * m + 1]
    moves[#moves + 1] = ARGV[a + 2 * m]
  end
  for _, b in ipairs(budgets) do redis.call('ZADD', b[1], 'XX', unpack(moves)) end
end

local st = redis.call('HMGET', KEYS[1], 'rate', 'f', 'at', 'pause', 'slow')
if tonumber(st[1]) ~= rate then
  -- the rate every caller passes is the instance's current one; kept for the dashboard
  redis.call('HSET', KEYS[1], 'rate', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 86400000)
end
local eff = effective(rate, st[2], st[3], st[5], recover)
local window = 1000000 + margin
local interval = window / eff
budgets[1][3] = math.max(1, math.floor(eff + 1e-9))
budgets[1][4] = window
-- one request reserves at most one interval ahead; a block, as many intervals as it has slots
local horizon = math.min(interval, single_horizon)
if want > 1 then horizon = want * interval end

local pause = tonumber(st[4] or '0')
for b = 2, #budgets do
  local p = tonumber(redis.call('HGET', budgets[b][2], 'pause') or '0')
  if p > pause then pause = p end
end

-- each log: its slots of the last window and every one reserved ahead, ascending
for _, b in ipairs(budgets) do
  local keep = math.max(10000000, 2 * interval + b[4])
  b[6] = keep
  redis.call('ZREMRANGEBYSCORE', b[1], '-inf', '(' .. fmt(now - keep))
  local raw = redis.call('ZRANGEBYSCORE', b[1], '(' .. fmt(now - b[4]), '+inf', 'WITHSCORES')
  local slots, reserved = {}, 0
  for k = 2, #raw, 2 do
    slots[#slots + 1] = tonumber(raw[k])
    reserved = math.max(reserved, tonumber(string.match(raw[k - 1], '^(%d+)')))
  end
  b[5], b[7] = slots, reserved
end

-- the earliest instant >= t that budget b allows: after every slot as its request really left, `spacing` after
-- the last slot reserved (so a request that left late delays the next one only if it left more than one interval
-- late), and such that the window ending there holds fewer than its limit
local function earliest(b, t, spacing)
  local slots, limit, w = b[5], b[3], b[4]
  local n = #slots
  if n == 0 then return t end
  t = math.max(t, slots[n], b[7] + spacing)
  local inside = 0
  for k = n, 1, -1 do
    if slots[k] > t - w then inside = inside + 1 else break end
  end
  if inside >= limit then t = math.max(t, slots[n - limit + 1] + w) end
  return t
end

local function next_slot(t)
  t = earliest(budgets[1], t, interval)
  for b = 2, #budgets do t = earliest(budgets[b], t, 0) end
  return math.ceil(t)
end

-- USER before BATCH: while any process has a USER waiter registered, BATCH takes no slot
if queued then  -- a waiter that asked at the other priority before is no longer waiting there
  local other = prio ~= 0 and 3 or 5
  redis.call('ZREM', KEYS[other], waiter)
  redis.call('ZREM', KEYS[other + 1], waiter)
end
local users = redis.call('ZCARD', KEYS[3])
if users > 0 then
  local dead = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', fmt(now))
  if #dead > 0 then
    redis.call('ZREM', KEYS[3], unpack(dead))
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', fmt(now))
    users = redis.call('ZCARD', KEYS[3])
  end
end
local blocked = prio ~= 0 and users > 0

local first = next_slot(math.max(now, pause))
local granted = {}
if not blocked and first - now <= horizon then
  local slot = first
  while true do
    granted[#granted + 1] = slot
    for _, b in ipairs(budgets) do
      table.insert(b[5], slot)
      b[7] = slot
    end
    if #granted >= want then break end
    slot = next_slot(slot)
    if slot - now > horizon then break end
  end
end

if #granted == 0 then
  if trial == 1 then redis.call('DEL', KEYS[8]) end  -- taken by this very call: give it back
  -- refused: queue up (arrival order within the priority) and sleep until about our turn
  local wait_key, alive_key = KEYS[3], KEYS[4]
  if prio ~= 0 then wait_key, alive_key = KEYS[5], KEYS[6] end
  redis.call('ZADD', wait_key, 'NX', fmt(now), waiter)
  local ahead = redis.call('ZRANK', wait_key, waiter)
  if prio ~= 0 then ahead = ahead + users end
  local delay = math.max(first - now - horizon, 0) + ahead * interval
  local cap = max_poll
  if pause - now - horizon > cap then cap = pause - now - horizon end
  delay = math.max(math.min(delay, cap), 1000)
  redis.call('ZADD', alive_key, fmt(now + delay + grace), waiter)
  local ttl = math.ceil((delay + grace) / 1000) + 60000
  for _, k in ipairs({wait_key, alive_key}) do
    if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
  end
  return {0, math.floor(delay), failures, math.floor(first - now)}
end

local last = granted[#granted]
local members, out = {}, {}
for _, slot in ipairs(granted) do
  local member = fmt(slot) .. '@' .. tag
  members[#members + 1] = fmt(slot)
  members[#members + 1] = member
  out[#out + 1] = member
end
for _, b in ipairs(budgets) do
  redis.call('ZADD', b[1], unpack(members))
  redis.call('PEXPIRE', b[1], math.ceil((b[6] + last - now) / 1000))
end
if queued and not keep then
  for k = 3, 6 do redis.call('ZREM', KEYS[k], waiter) end
elseif keep then
  redis.call('ZADD', KEYS[3], 'NX', fmt(now), waiter)
  redis.call('ZADD', KEYS[4], fmt(last + grace + max_poll), waiter)
end
local code = 1
if trial == 1 then code = 3 end
return {code, math.floor(granted[1] - now), failures, math.floor(granted[1] - now), unpack(out)}
