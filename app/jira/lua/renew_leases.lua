-- KEYS: leases. ARGV: holder, ttl_ms. Extends each lease `holder` still holds; returns 1 (kept) or 0 (lost) per key.
local kept = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    kept[i] = 1
  else
    kept[i] = 0
  end
end
return kept
