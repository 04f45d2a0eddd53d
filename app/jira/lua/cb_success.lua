-- KEYS: circuit hash, trial permit. Returns the state before.
local before = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('DEL', KEYS[1], KEYS[2])
return before
