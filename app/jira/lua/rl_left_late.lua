-- KEYS: grants. ARGV: slot member, microseconds the request left after its slot.
-- A request that left late moves its slot to when it really left, so the window check of every later grant
-- counts it where JIRA will see it (a late request can then never crowd the slots granted after it).
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score then
  redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', tonumber(score) + tonumber(ARGV[2])), ARGV[1])
end
return score and 1 or 0
