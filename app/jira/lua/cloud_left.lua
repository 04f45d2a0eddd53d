--! needs: clock
-- A Cloud write admitted earlier leaves now: its entry in the issue's write log moves to now, so the window check of
-- the issue's next write counts it where JIRA sees it. KEYS: [1] issue log. ARGV: [1] member
redis.call('ZADD', KEYS[1], 'XX', fmt(now), ARGV[1])
return 1
