"""The distributed request gate: per JIRA instance, all workers on all machines share one budget (CONTRACT 10.3).

How it keeps "never more than `rate_limit_per_second` requests in any one-second window, as JIRA sees them":

* Every grant is a *slot* on Redis' clock (`TIME`), recorded in a sorted set (the sliding-window log).
  Machine clocks never matter; each process only sleeps the relative delay Redis tells it.
* Slots are spaced `W / rate` apart with `W = 1 s + arrival_margin`, and a window of length `W` never holds
  more than `rate` slots. Requests reach JIRA a few ms after their slot (scheduling, network); as long as that
  jitter stays below `arrival_margin`, any one-second window *at JIRA* sees at most `rate` of them.
  Utilisation under backlog is `1 / W` (≈ 97 % with the default 30 ms margin).
* Plain GCRA with burst = rate would allow 2 × rate in a sliding second after an idle period; burst 1 with
  the log check above does not.
* A waiter reserves a slot only when it is at most one interval ahead (`horizon`), then sleeps until it.
  So the next slot is always taken by someone already waiting (full utilisation) but nobody holds slots far in
  the future, which keeps priority, 429 pauses and rate changes effective at once.
* Priority (CONTRACT 10.9): waiters that were refused register in a per-priority sorted set with a heartbeat
  deadline (a crashed process drops out by itself). While any USER waiter is registered, BATCH acquirers take
  no slot. Refused waiters sleep until their turn (queue position × interval, at most `max_poll_interval`),
  so a backlog costs about one Redis call per waiter per grant, not a busy loop.
* `observe`: a 429 pauses the instance until Redis-now + max(Retry-After, 1 s) for every acquirer; a 429
  after a pause ended halves the effective rate (recovering linearly); `X-RateLimit-Remaining` ≤ 1 halves the
  rate for one second.
* Rate changes: the rate of the most recently *started* acquire wins, so waiters that began before a change
  follow it at their next poll; the log check applies a lower rate to the slots already in the window.

Redis keys (all with the hash tag `{<instance id>}`): see `docs/coordination.md`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.jira.errors import retry_after_seconds
from app.jira.gate import InstanceRef, Priority

__all__ = ["RateLimiterStats", "RedisRateLimiter"]

# the slot granted last in this asyncio task: (instance id, slot member, time.monotonic() it was due)
_GRANT: contextvars.ContextVar[tuple[uuid.UUID, str, float] | None] = contextvars.ContextVar("grant", default=None)
_LATE_WORTH_RECORDING_US = 2_000


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

_US = 1_000_000
_PRIORITIES = (Priority.USER, Priority.BATCH)

# Shared by the scripts: Redis-clock microseconds and number formatting without exponents.
_PRELUDE = """
local function fmt(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# Effective rate from the configured rate, the 429 backoff factor and the low-remaining slowdown.
_EFFECTIVE_RATE = """
local function effective(rate, backoff_key, slow_key, recover)
  local factor = 1.0
  local b = redis.call('HMGET', backoff_key, 'f', 'at')
  if b[1] then
    factor = math.min(1.0, tonumber(b[1]) + recover * (now - tonumber(b[2])) / 1000000)
  end
  if redis.call('EXISTS', slow_key) == 1 then factor = factor * 0.5 end
  return math.max(rate * factor, 0.01), factor
end
"""

# KEYS: grants, pause, slow, backoff, cfg, wait_user, alive_user, wait_batch, alive_batch
# ARGV: rate, priority, waiter, margin_us, started_us, max_poll_us, grace_us, recover_per_s, max_horizon_us
# Returns {granted, delay_us, started_us, slot}: granted → sleep delay_us then send; refused → sleep, retry.
_ACQUIRE = _PRELUDE + _EFFECTIVE_RATE + """
local rate = tonumber(ARGV[1])
local prio = tonumber(ARGV[2])
local waiter = ARGV[3]
local margin = tonumber(ARGV[4])
local started = tonumber(ARGV[5])
local max_poll = tonumber(ARGV[6])
local grace = tonumber(ARGV[7])
local recover = tonumber(ARGV[8])
local max_horizon = tonumber(ARGV[9])
if started <= 0 then started = now end

-- the most recently started acquire carries the freshest rate_limit_per_second
local cfg = redis.call('HMGET', KEYS[5], 'rate', 'since')
local since = tonumber(cfg[2])
if since == nil or started > since then
  redis.call('HSET', KEYS[5], 'rate', ARGV[1], 'since', fmt(started))
elseif started < since then
  rate = tonumber(cfg[1])
end
redis.call('PEXPIRE', KEYS[5], 3600000)

-- waiters whose heartbeat deadline passed (crashed or cancelled processes) no longer count
local sets = {{KEYS[6], KEYS[7]}, {KEYS[8], KEYS[9]}}
for _, s in ipairs(sets) do
  local dead = redis.call('ZRANGEBYSCORE', s[2], '-inf', fmt(now))
  if #dead > 0 then
    redis.call('ZREM', s[1], unpack(dead))
    redis.call('ZREMRANGEBYSCORE', s[2], '-inf', fmt(now))
  end
end

local eff = effective(rate, KEYS[4], KEYS[3], recover)
local window = 1000000 + margin
local interval = window / eff
local limit = math.max(1, math.floor(eff + 1e-9))
local horizon = math.min(interval, max_horizon)
local keep = math.max(10000000, 2 * interval + window)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. fmt(now - keep))

-- earliest slot: not before now, the end of a pause, one interval after the last slot, and such that the
-- window (slot - W, slot] holds fewer than `limit` earlier slots
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
local slot = math.max(now, pause)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then slot = math.max(slot, tonumber(last[2]) + interval) end
local recent = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. fmt(slot - window), '+inf', 'WITHSCORES')
local n = #recent / 2
if n >= limit then
  slot = math.max(slot, tonumber(recent[2 * (n - limit + 1)]) + window)
end
slot = math.ceil(slot)

local wait_key, alive_key = KEYS[6], KEYS[7]
if prio ~= 0 then wait_key, alive_key = KEYS[8], KEYS[9] end
local users = redis.call('ZCARD', KEYS[6])
local blocked = prio ~= 0 and users > 0

if not blocked and slot - now <= horizon then
  redis.call('ZADD', KEYS[1], fmt(slot), fmt(slot))
  redis.call('PEXPIRE', KEYS[1], math.ceil((keep + slot - now) / 1000))
  redis.call('ZREM', wait_key, waiter)
  redis.call('ZREM', alive_key, waiter)
  return {1, math.floor(slot - now), fmt(started), fmt(slot)}
end

-- refused: queue up and sleep until about our turn
redis.call('ZADD', wait_key, 'NX', fmt(started), waiter)
local ahead = redis.call('ZRANK', wait_key, waiter)
if prio ~= 0 then ahead = ahead + users end
local delay = math.max(slot - now - horizon, 0) + ahead * interval
local cap = max_poll
if pause - now - horizon > cap then cap = pause - now - horizon end
delay = math.max(math.min(delay, cap), 1000)
redis.call('ZADD', alive_key, fmt(now + delay + grace), waiter)
local ttl = math.ceil((delay + grace) / 1000) + 60000
for _, k in ipairs({wait_key, alive_key}) do
  if redis.call('PTTL', k) < ttl then redis.call('PEXPIRE', k, ttl) end
end
return {0, math.floor(delay), fmt(started), ''}
"""

# KEYS: grants. ARGV: slot member, microseconds the request left after its slot.
# A request that left late moves its slot to when it really left, so the window check of every later grant
# counts it where JIRA will see it (a late request can then never crowd the slots granted after it).
_LEFT_LATE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score then
  redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', tonumber(score) + tonumber(ARGV[2])), ARGV[1])
end
return score and 1 or 0
"""

# KEYS: pause. Returns the microseconds the instance stays paused (0: not paused).
_PAUSE_LEFT = _PRELUDE + """
local pause = tonumber(redis.call('GET', KEYS[1]) or '0')
return math.max(0, math.floor(pause - now))
"""

# KEYS: pause, backoff. ARGV: retry_after_us, repeat_window_us, min_factor, recover_per_s, backoff_ttl_ms.
# A 429 pauses everyone; a 429 soon after a pause ended (JIRA still unhappy) also halves the rate.
_ON_429 = _PRELUDE + """
local ra = tonumber(ARGV[1])
local repeat_window = tonumber(ARGV[2])
local min_factor = tonumber(ARGV[3])
local recover = tonumber(ARGV[4])
local pause = tonumber(redis.call('GET', KEYS[1]) or '0')
local b = redis.call('HMGET', KEYS[2], 'f', 'at', 'last')
local factor = 1.0
if b[1] then factor = math.min(1.0, tonumber(b[1]) + recover * (now - tonumber(b[2])) / 1000000) end
if b[3] and now >= pause and now - tonumber(b[3]) < repeat_window then
  factor = math.max(min_factor, factor * 0.5)
end
redis.call('HSET', KEYS[2], 'f', tostring(factor), 'at', fmt(now), 'last', fmt(now))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]))
local until_ = now + ra
if until_ > pause then
  redis.call('SET', KEYS[1], fmt(until_), 'PX', math.ceil(ra / 1000) + 1000)
  pause = until_
end
return math.floor(pause - now)
"""

# KEYS: grants, pause, slow, backoff, cfg, wait_user, alive_user, wait_batch, alive_batch. ARGV: recover.
_STATS = _PRELUDE + _EFFECTIVE_RATE + """
local rate = tonumber(redis.call('HGET', KEYS[5], 'rate') or '0')
local eff, factor = effective(rate, KEYS[4], KEYS[3], tonumber(ARGV[1]))
local per_second = {}
for i = 1, 10 do
  per_second[i] = redis.call('ZCOUNT', KEYS[1], '(' .. fmt(now - i * 1000000), fmt(now - (i - 1) * 1000000))
end
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
return {
  fmt(now), tostring(rate), tostring(eff), tostring(factor), redis.call('EXISTS', KEYS[3]),
  math.max(0, math.floor(pause - now)),
  redis.call('ZCOUNT', KEYS[7], '(' .. fmt(now), '+inf'), redis.call('ZCOUNT', KEYS[9], '(' .. fmt(now), '+inf'),
  redis.call('ZCOUNT', KEYS[1], '(' .. fmt(now), '+inf'),
  per_second,
}
"""


@dataclass(frozen=True)
class RateLimiterStats:
    """What the dashboard shows about one instance's request budget."""

    rate_limit_per_second: int
    effective_rate_per_second: float
    backoff_factor: float
    slowed_down: bool
    paused_for_seconds: float
    waiting_user: int
    waiting_batch: int
    reserved_slots: int
    grants_per_second: tuple[int, ...]  # last 10 seconds, most recent first

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate_limit_per_second": self.rate_limit_per_second,
            "effective_rate_per_second": round(self.effective_rate_per_second, 3),
            "backoff_factor": round(self.backoff_factor, 3),
            "slowed_down": self.slowed_down,
            "paused_for_seconds": round(self.paused_for_seconds, 3),
            "waiting": {"user": self.waiting_user, "batch": self.waiting_batch},
            "reserved_slots": self.reserved_slots,
            "grants_last_second": self.grants_per_second[0],
            "grants_per_second": list(self.grants_per_second),
        }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive look-up that works for httpx.Headers and plain dicts alike."""
    value = headers.get(name)
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == name:
            return val
    return None


class RedisRateLimiter:
    """The `RequestGate` every worker and API process shares through one Redis (see module docstring)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "ttsync:rl",
        arrival_margin: float = 0.045,
        max_poll_interval: float = 0.5,
        waiter_grace: float = 1.0,
        max_horizon: float = 0.25,
        low_remaining_threshold: int = 1,
        slowdown_seconds: float = 1.0,
        repeat_429_window: float = 60.0,
        min_backoff_factor: float = 0.25,
        recover_per_second: float = 0.05,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._margin_us = int(arrival_margin * _US)
        self._max_poll_us = int(max_poll_interval * _US)
        self._grace_us = int(waiter_grace * _US)
        self._max_horizon_us = int(max_horizon * _US)
        # a slot woken up later than this may have drifted into the next one's window: take a new slot
        self._late_tolerance = arrival_margin * 0.3  # the rest of the margin covers signing and transit
        self._low_remaining = low_remaining_threshold
        self._slowdown_ms = int(slowdown_seconds * 1000)
        self._repeat_429_us = int(repeat_429_window * _US)
        self._min_factor = min_backoff_factor
        self._recover = recover_per_second
        self._acquire_script = redis.register_script(_ACQUIRE)
        self._pause_left_script = redis.register_script(_PAUSE_LEFT)
        self._left_late_script = redis.register_script(_LEFT_LATE)
        self._on_429_script = redis.register_script(_ON_429)
        self._stats_script = redis.register_script(_STATS)

    def keys(self, instance_id: uuid.UUID) -> dict[str, str]:
        """The Redis keys used for one instance (hash-tagged so they live in one cluster slot)."""
        base = f"{self._prefix}:{{{instance_id}}}"
        return {
            "grants": f"{base}:grants",
            "pause": f"{base}:pause",
            "slow": f"{base}:slow",
            "backoff": f"{base}:backoff",
            "cfg": f"{base}:cfg",
            "wait_user": f"{base}:wait:user",
            "alive_user": f"{base}:alive:user",
            "wait_batch": f"{base}:wait:batch",
            "alive_batch": f"{base}:alive:batch",
        }

    def _key_list(self, instance_id: uuid.UUID) -> list[str]:
        k = self.keys(instance_id)
        return [k["grants"], k["pause"], k["slow"], k["backoff"], k["cfg"],
                k["wait_user"], k["alive_user"], k["wait_batch"], k["alive_batch"]]

    async def acquire(self, instance: InstanceRef, priority: Priority) -> float:
        """Wait until one more request may go to `instance`; return the seconds waited (not an attempt)."""
        # time.monotonic(), not loop.time(): uvloop's loop time is cached per loop iteration (ms steps), and
        # lateness measured against a stale clock would misplace slots
        began = time.monotonic()
        keys = self._key_list(instance.id)
        waiter = uuid.uuid4().hex
        started = "0"
        queued = False
        granted = False
        try:
            while True:
                granted_flag, delay_us, started_raw, slot_raw = await self._acquire_script(
                    keys=keys,
                    args=[max(1, int(instance.rate_limit_per_second)), int(priority), waiter, self._margin_us,
                          started, self._max_poll_us, self._grace_us, self._recover, self._max_horizon_us],
                )
                started = started_raw.decode() if isinstance(started_raw, bytes) else str(started_raw)
                delay = int(delay_us) / _US
                if not int(granted_flag):
                    queued = True
                    await asyncio.sleep(delay + random.uniform(0, 0.002))
                    continue
                queued = False
                if delay <= 0:
                    granted = True
                    _GRANT.set((instance.id, _text(slot_raw), time.monotonic()))
                    break
                due = time.monotonic() + delay
                await asyncio.sleep(delay)
                while (early := due - time.monotonic()) > 0:  # a timer with ms resolution may fire a bit early
                    await asyncio.sleep(early)
                # A wake-up far behind schedule could crowd the next slot at JIRA's end: the slot is forfeited
                # and we queue again. The forfeited slot stays counted: removing it was tried and measured worse
                # (a process that wakes up late is on a busy machine, whose other requests are late too; the
                # unused slot is the slack that keeps them inside the limit). Nothing else happens between this
                # check and the send (no Redis round trip): every millisecond here is eaten out of the margin.
                # (A 429 heard while we slept at most lets this one request meet the pause; it is retried.)
                if time.monotonic() - due <= self._late_tolerance:
                    granted = True
                    _GRANT.set((instance.id, _text(slot_raw), due))
                    break
        finally:
            if queued and not granted:
                await self._forget_waiter(keys, waiter)
        return time.monotonic() - began

    async def left(self, instance: InstanceRef) -> None:
        """The request granted last in this task leaves now: if that is later than its slot, move the slot."""
        grant = _GRANT.get()
        if grant is None or grant[0] != instance.id:
            return
        _GRANT.set(None)
        late_us = int((time.monotonic() - grant[2]) * _US)
        if late_us > _LATE_WORTH_RECORDING_US:
            with contextlib.suppress(Exception):  # best effort: the margin still covers most of it
                await self._left_late_script(keys=[self.keys(instance.id)["grants"]], args=[grant[1], late_us])

    async def _forget_waiter(self, keys: list[str], waiter: str) -> None:
        """Best effort on cancellation; the heartbeat deadline removes the waiter anyway."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                pipe = self._redis.pipeline(transaction=False)
                for k in keys[5:]:
                    pipe.zrem(k, waiter)
                await pipe.execute()

    async def observe(self, instance: InstanceRef, status: int | None, headers: Mapping[str, str]) -> None:
        """A 429 pauses every acquirer for max(Retry-After, 1 s); a nearly spent JIRA budget slows us briefly."""
        keys = self.keys(instance.id)
        if status == 429:
            retry_after = retry_after_seconds(_header(headers, "retry-after"))
            await self._on_429_script(
                keys=[keys["pause"], keys["backoff"]],
                args=[int(retry_after * _US), self._repeat_429_us, self._min_factor, self._recover, 3_600_000],
            )
            return
        remaining = _header(headers, "x-ratelimit-remaining")
        if remaining is None:
            return
        try:
            value = int(remaining.strip())
        except ValueError:
            return
        if value <= self._low_remaining:
            await self._redis.set(keys["slow"], "1", px=self._slowdown_ms)

    async def pause_left(self, instance_id: uuid.UUID) -> float:
        """Seconds the instance stays paused after a 429 (0 when not paused)."""
        return int(await self._pause_left_script(keys=[self.keys(instance_id)["pause"]])) / _US

    async def stats(self, instance_id: uuid.UUID) -> dict[str, Any]:
        """Recent grants per second, current pause, waiting counts and effective rate, for the dashboard."""
        return (await self.instance_stats(instance_id)).as_dict()

    async def instance_stats(self, instance_id: uuid.UUID) -> RateLimiterStats:
        """`stats` as a typed value."""
        raw = await self._stats_script(keys=self._key_list(instance_id), args=[self._recover])

        def num(x: Any) -> float:
            v = float(x.decode() if isinstance(x, bytes) else x)
            return 0.0 if math.isnan(v) else v

        return RateLimiterStats(
            rate_limit_per_second=int(num(raw[1])),
            effective_rate_per_second=num(raw[2]) if num(raw[1]) else 0.0,
            backoff_factor=num(raw[3]),
            slowed_down=bool(int(raw[4])),
            paused_for_seconds=int(raw[5]) / _US,
            waiting_user=int(raw[6]),
            waiting_batch=int(raw[7]),
            reserved_slots=int(raw[8]),
            grants_per_second=tuple(int(x) for x in raw[9]),
        )
