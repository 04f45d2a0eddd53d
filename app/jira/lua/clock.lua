-- The preamble of every script that needs the time: Redis' own clock, so machine clocks never matter.
-- `now` is in microseconds; `fmt` writes a number without an exponent (Lua would print 1.7e+15).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) return string.format('%.0f', x) end
