-- KEYS: grants logs. ARGV: (member, moved slot µs) pairs: requests that left later than their slots.
-- Each slot moves to when its request really left, so every later grant's window check counts it where JIRA
-- sees it arrive. (gate_acquire.lua carries these itself when a call of the same process comes soon.)
local moves = {}
for i = 1, #ARGV, 2 do
  moves[#moves + 1] = ARGV[i + 1]
  moves[#moves + 1] = ARGV[i]
end
for _, key in ipairs(KEYS) do redis.call('ZADD', key, 'XX', unpack(moves)) end
return #moves / 2
