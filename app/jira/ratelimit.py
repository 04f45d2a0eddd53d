"""The distributed request gate: per JIRA instance, all workers on all machines share one budget (CONTRACT 10.3).

How it keeps "never more than `rate_limit_per_second` requests in any one-second window, as JIRA sees them":

* Every grant is a *slot* on Redis' clock (`TIME`), recorded in a sorted set (the sliding-window log).
  Machine clocks never matter; each process only sleeps the relative delay Redis tells it.
* Slots are spaced `W / rate` apart with `W = 1 s + arrival_margin`, and a window of length `W` never holds
  more than `rate` slots. Requests reach JIRA a few ms after their slot (scheduling, network); as long as that
  jitter stays below `arrival_margin`, any one-second window *at JIRA* sees at most `rate` of them.
  Utilisation under backlog is `1 / W` (≈ 95 % with the default 50 ms margin,
  `RATE_LIMIT_ARRIVAL_MARGIN_SECONDS`).
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
* **Jira Cloud** (CONTRACT 12): a site's requests also fit its `CloudPool`'s keyed budgets (`CloudBudgets`,
  `app/jira/cloud_budgets.py`), asked before the site's slot, as the request leaves and with its answer: the app's
  points for the clock hour, the issue's write logs and the pauses of Cloud 429s by `RateLimit-Reason` (a burst 429
  is the instance pause above).

Redis keys: `app.redis_keys.rate_limit` and `cloud_*`; the Lua scripts: `app/jira/lua/rl_*.lua` and `cloud_*.lua`;
see `docs/coordination.md`.
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

from app import redis_keys
from app.config import DEFAULT_ARRIVAL_MARGIN_SECONDS
from app.jira.cloud_budgets import CloudBudgets
from app.jira.errors import retry_after_seconds
from app.jira.gate import InstanceRef, Priority, response_header
from app.jira.scripts import as_text, register

__all__ = ["RateLimiterStats", "RedisRateLimiter"]

# the slot granted last in this asyncio task: (instance id, slot member, time.monotonic() it was due)
_GRANT: contextvars.ContextVar[tuple[uuid.UUID, str, float] | None] = contextvars.ContextVar("grant", default=None)
_LATE_WORTH_RECORDING_US = 2_000
_US = 1_000_000

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


class RedisRateLimiter:
    """The `RequestGate` every worker and API process shares through one Redis (see module docstring)."""

    def __init__(
        self,
        redis: Redis,
        *,
        arrival_margin: float = DEFAULT_ARRIVAL_MARGIN_SECONDS,
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
        self._acquire_script = register(redis, "rl_acquire")
        self._left_late_script = register(redis, "rl_left_late")
        self._on_429_script = register(redis, "rl_on_429")
        self._stats_script = register(redis, "rl_stats")
        self.cloud = CloudBudgets(redis, arrival_margin=arrival_margin)

    def keys(self, instance_id: uuid.UUID) -> dict[str, str]:
        """The Redis keys used for one instance (hash-tagged so they live in one cluster slot)."""
        return redis_keys.rate_limit(instance_id)

    def _key_list(self, instance_id: uuid.UUID) -> list[str]:
        k = self.keys(instance_id)
        return [k[part] for part in redis_keys.RATE_LIMIT_PARTS]  # the order the scripts' KEYS expect

    async def acquire(self, instance: InstanceRef, priority: Priority, *, write_to: str | None = None) -> float:
        """Wait until one more request may go to `instance` (on Cloud, fitting its pool's budgets; `write_to`: the
        issue a write changes); return the seconds waited (not an attempt). Raises `RateLimited` (nothing sent)
        when a Cloud budget stays spent for longer than a second."""
        # time.monotonic(), not loop.time(): uvloop's loop time is cached per loop iteration (ms steps), and
        # lateness measured against a stale clock would misplace slots
        began = time.monotonic()
        await self.cloud.admit(instance, write_to)
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
                    _GRANT.set((instance.id, as_text(slot_raw), time.monotonic()))
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
                    _GRANT.set((instance.id, as_text(slot_raw), due))
                    break
        finally:
            if queued and not granted:
                await self._forget_waiter(keys, waiter)
        return time.monotonic() - began

    async def left(self, instance: InstanceRef) -> None:
        """The request granted last in this task leaves now: if that is later than its slot, move the slot (and a
        Cloud write's entry in its issue's log, to now)."""
        await self.cloud.left(instance)
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

    async def observe(self, instance: InstanceRef, status: int | None, headers: Mapping[str, str], *,
                      write_to: str | None = None, objects: int = 0) -> None:
        """A 429 pauses every acquirer for max(Retry-After, 1 s) (on Cloud: what its reason names); a nearly spent
        JIRA budget slows us briefly; a Cloud read's objects are charged to its pool."""
        keys = self.keys(instance.id)
        if await self.cloud.observe(instance, status, headers, write_to=write_to, objects=objects):
            return
        if status == 429:
            retry_after = retry_after_seconds(response_header(headers, "retry-after"))
            await self._on_429_script(
                keys=[keys["pause"], keys["backoff"]],
                args=[int(retry_after * _US), self._repeat_429_us, self._min_factor, self._recover, 3_600_000],
            )
            return
        remaining = response_header(headers, "x-ratelimit-remaining")
        if remaining is None:
            return
        try:
            value = int(remaining.strip())
        except ValueError:
            return
        if value <= self._low_remaining:
            await self._redis.set(keys["slow"], "1", px=self._slowdown_ms)

    async def instance_stats(self, instance_id: uuid.UUID) -> RateLimiterStats:
        """Recent grants per second, current pause, waiting counts and effective rate, for the dashboard."""
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
