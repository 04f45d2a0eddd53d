--! needs: clock
-- Jira Cloud's limits beside a site's own rate (CONTRACT 12): may one more request of site ARGV[1] go now?
-- The app's points pool (80 % of its hourly quota across every Cloud site, in clock hours, shared equally by the
-- sites competing for it), the pauses a 429 set (the pool's, the site's quota, one issue's), and for a write the
-- issue's write limits (sliding-window logs). An admitted request is charged its minimum cost (1 point; a read's
-- objects are charged after its answer, cloud_charge.lua) and, for a write, logged against its issue.
-- While Atlassian says the quota is nearly spent (`near`), every site of the pool goes at half its rate.
-- KEYS: [1] pool points (hash: h = the window's start, total, s:<site> points, l:<site> last admission),
--       [2] competing sites (zset site → last want), [3] pool pause, [4] site pause, [5] pool near,
--       then for a write: [6] issue log (zset), [7] issue pause
-- ARGV: [1] site, [2] budget, [3] cost, [4] window_us, [5] competing_us, [6] member (for the issue log),
--       [7] margin_us, [8] the site's rate per second, then (limit, window_us) pairs of the issue's write limits
-- Returns {code, delay_us}: 0 admitted; refused: 1 pool paused, 2 site paused, 3 pool spent, 4 the site's fair
-- share spent, 5 issue limit, 6 issue paused, 7 slowed down near the limit (ask again in delay_us)
local site = ARGV[1]
local budget = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local competing = tonumber(ARGV[5])
local margin = tonumber(ARGV[7])
local start = math.floor(now / window) * window
local reset = start + window

local pauses = {{KEYS[3], 1}, {KEYS[4], 2}}
if #KEYS >= 7 then pauses[3] = {KEYS[7], 6} end
for _, p in ipairs(pauses) do
  local until_ = tonumber(redis.call('GET', p[1]) or '0')
  if until_ > now then return {p[2], math.ceil(until_ - now)} end
end

if tonumber(redis.call('HGET', KEYS[1], 'h') or '-1') ~= start then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'h', fmt(start), 'total', '0')
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. fmt(now - competing))
redis.call('ZADD', KEYS[2], fmt(now), site)
redis.call('PEXPIRE', KEYS[2], math.ceil(competing / 1000) + 1000)
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
local mine = tonumber(redis.call('HGET', KEYS[1], 's:' .. site) or '0')
if total + cost > budget then return {3, math.ceil(reset - now)} end
if redis.call('EXISTS', KEYS[5]) == 1 then
  local gap = 2000000 / math.max(1, tonumber(ARGV[8]))
  local since = now - tonumber(redis.call('HGET', KEYS[1], 'l:' .. site) or '0')
  if since < gap then return {7, math.ceil(gap - since)} end
end
local sites = redis.call('ZCARD', KEYS[2])
if sites > 1 and mine + cost > math.max(1, math.floor(budget / sites)) then
  -- come back when the others may have stopped competing, or at the reset
  return {4, math.ceil(math.min(reset - now, competing))}
end

if #KEYS >= 6 then
  local longest = 0
  local delay = 0
  for i = 9, #ARGV, 2 do
    local limit, w = tonumber(ARGV[i]), tonumber(ARGV[i + 1]) + margin
    if w > longest then longest = w end
    local inside = redis.call('ZRANGEBYSCORE', KEYS[6], '(' .. fmt(now - w), '+inf', 'WITHSCORES')
    local n = #inside / 2
    if n >= limit then
      -- the write that must leave the window before one more fits
      local oldest = tonumber(inside[2 * (n - limit + 1)])
      delay = math.max(delay, oldest + w - now)
    end
  end
  if delay > 0 then return {5, math.ceil(delay)} end
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. fmt(now - longest))
  redis.call('ZADD', KEYS[6], fmt(now), ARGV[6])
  redis.call('PEXPIRE', KEYS[6], math.ceil(longest / 1000) + 1000)
end

redis.call('HINCRBY', KEYS[1], 'total', cost)
redis.call('HINCRBY', KEYS[1], 's:' .. site, cost)
redis.call('HSET', KEYS[1], 'l:' .. site, fmt(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(2 * window / 1000))
return {0, 0}
