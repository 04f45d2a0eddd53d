--! needs: clock circuit_allow
-- KEYS: circuit hash, trial permit. ARGV: reset_us, trial_ttl_ms, permit token, half_open_retry_us.
-- Returns {allowed, retry_in_us, trial, state}.
local allowed, retry_us, trial, state = circuit_allow(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]),
                                                      ARGV[3], tonumber(ARGV[4]))
return {allowed, retry_us, trial, state}
