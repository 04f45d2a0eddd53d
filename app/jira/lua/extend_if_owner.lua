-- KEYS: a lock. ARGV: the holder's token, new TTL ms. Compare-and-PEXPIRE: only the holder renews it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
