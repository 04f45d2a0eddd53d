-- KEYS: a lock or permit. ARGV: the holder's token. Compare-and-delete: only the holder frees it, so a
-- holder whose key expired (and was taken by someone else) cannot free the next holder's.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
