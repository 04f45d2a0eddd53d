-- The circuit's decision (CONTRACT 10.8), shared by cb_allow.lua and the request gate (gate_acquire.lua).
-- closed: allowed. open: refused until `opened_at + reset`. half-open: the one caller that takes the trial permit
-- (SET NX PX, so a crashed holder's permit expires) is allowed, everyone else is refused for a while.
-- Returns allowed (0/1), retry_in_us, trial (0/1), state, consecutive failures.
local function circuit_allow(hash, trial_key, reset_us, trial_ttl_ms, token, half_open_retry_us)
  local st = redis.call('HMGET', hash, 'state', 'opened_at', 'failures')
  local failures = tonumber(st[3] or '0')
  if st[1] ~= 'open' then return 1, 0, 0, 'closed', failures end
  local half_open_at = tonumber(st[2]) + reset_us
  if now < half_open_at then return 0, math.floor(half_open_at - now), 0, 'open', failures end
  if redis.call('SET', trial_key, token, 'NX', 'PX', trial_ttl_ms) then return 1, 0, 1, 'half_open', failures end
  local left = math.max(redis.call('PTTL', trial_key), 1) * 1000
  return 0, math.min(left, half_open_retry_us), 0, 'half_open', failures
end
