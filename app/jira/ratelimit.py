"""The request gate every process shares through Redis: per JIRA instance, one rate budget for all workers on all
machines, its circuit, and room for further keyed budgets (CONTRACT 10.3, 10.8, 10.9).

One decision per request, or per block of requests, in one Lua call (`app/jira/lua/gate_acquire.lua`):

* **Circuit first.** Nothing is reserved for an instance whose circuit is open; a half-open one lets exactly one
  trial request through. A caller meets `GateClosed` (nothing sent) and comes back when it says.
* **Slots.** Every grant is a *slot* on Redis' clock (`TIME`), kept in a sorted set (a sliding-window log), so
  machine clocks never matter. Slots are at least `W / rate` apart and no window of length `W = 1 s + margin`
  holds more than `rate` of them; the margin absorbs the variation in transit between a request leaving and its
  arrival at JIRA, so any one-second window *at JIRA* sees at most `rate` requests. Utilisation under backlog is
  `1 / W` (0.976 with the default 25 ms margin, `RATE_LIMIT_ARRIVAL_MARGIN_SECONDS`). Plain GCRA with burst =
  rate would allow 2 × rate in a sliding second after an idle period; burst 1 plus the log does not.
* **Blocks.** All the requests one process has waiting for one instance share one dispatcher, which asks for as
  many slots as it has waiters (up to half a second's worth) in one call, hands them out in priority order, and
  asks again only once every slot it handed out has left. A request that leaves later than its slot (a busy
  event loop) is *moved* to when it left, in the next call, before any later slot is placed: the window check
  then counts it where JIRA sees it, so lateness costs nothing (no slot is given up). A single request reserves
  at most one interval ahead, as before.
* **Priority** (10.9). A dispatcher that was refused registers in a per-priority sorted set with a heartbeat
  deadline (a crashed process drops out by itself); while any USER waiter is registered, BATCH takes no slot.
* **Answers** (`observe`): a 429 pauses the instance for max(Retry-After, 1 s) for every caller, and a 429 soon
  after a pause halves the rate (recovering linearly); `X-RateLimit-Remaining` ≤ 1 halves it for a second; a
  timeout, connection failure or 5xx counts towards opening the circuit, an answer shows JIRA is up.
* **Patience** (CONTRACT 11, fair share): a caller may say how long it would wait (`max_wait`); when the slot is
  further away than that (a 429's pause, the circuit), it meets `GateClosed` at once instead of waiting.
* **More budgets**: `acquire(..., budgets=[KeyedBudget(...)])` adds further logs (a per-issue limit, a pool)
  that every slot must also fit; each has its own `pause`. One mechanism, one Lua call, however many budgets.

Redis keys: `app.redis_keys.rate_limit` / `budget`; the circuit's: `app.redis_keys.circuit`; see
`docs/coordination.md`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app import redis_keys
from app.config import DEFAULT_ARRIVAL_MARGIN_SECONDS
from app.jira.circuit import CircuitBreaker
from app.jira.cloud_budgets import CloudBudgets
from app.jira.errors import GateClosed, retry_after_seconds
from app.jira.gate import InstanceRef, Priority, response_header
from app.jira.scripts import as_text, register

__all__ = ["KeyedBudget", "RateLimiterStats", "RedisRateLimiter"]

_US = 1_000_000
_LATE_WORTH_MOVING_US = 2_000
_LEAVING_SECONDS = 0.1  # a request normally leaves within this of its slot; the next block waits no longer
_STATE_TTL_MS = 3_600_000


@dataclass(frozen=True)
class KeyedBudget:
    """A further budget a request must fit: at most `limit` requests in any `window` seconds, counted in its own
    log (e.g. one JIRA issue's writes, or a pool several instances share). Its state hash holds its own pause."""

    name: str  # e.g. "issue:PROJ-1"
    limit: int
    window: float


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


@dataclass(eq=False)
class _Grant:
    """One slot handed to one request."""

    dispatch: _Dispatch
    member: str
    slot_us: int  # Redis' clock
    due: float  # time.monotonic() at which the slot is due
    trial: str | None  # the half-open circuit's trial permit, when this request is the trial
    done: bool = False


@dataclass(eq=False)
class _Waiter:
    priority: int
    seq: int
    ref: InstanceRef
    max_wait: float | None
    budgets: tuple[KeyedBudget, ...]
    future: asyncio.Future[_Grant]

    def __lt__(self, other: _Waiter) -> bool:
        return (self.priority, self.seq) < (other.priority, other.seq)


@dataclass(eq=False)
class _Dispatch:
    """Everything this process has waiting for one instance's slots."""

    instance_id: uuid.UUID
    tag: str
    waiter_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    waiters: list[_Waiter] = field(default_factory=list)  # a heap: USER first, then arrival
    task: asyncio.Task[None] | None = None
    queued: bool = False  # registered as a waiter in Redis
    outstanding: set[_Grant] = field(default_factory=set)
    consumed: asyncio.Event = field(default_factory=asyncio.Event)
    moves: list[tuple[str, int]] = field(default_factory=list)  # (member, moved slot µs) not yet in Redis
    failures_seen: int = 0  # consecutive failures the circuit held when last asked (or this process recorded)
    # time.monotonic(): a 429 this process heard pauses the instance, or a failure it recorded opened its circuit,
    # until then: slots handed out but not yet used are given up
    paused_until: float = 0.0


# the slot granted last in this asyncio task (the request about to leave)
_GRANT: contextvars.ContextVar[_Grant | None] = contextvars.ContextVar("grant", default=None)
_SEQ = itertools.count()


def block_size(rate: float, block_seconds: float = 0.5) -> int:
    """Slots one call may reserve: half a second's worth, and always fewer than the rate (so a request's move is
    known before the slot one window later is placed)."""
    return max(1, min(int(rate * block_seconds), int(rate) - 1))


class RedisRateLimiter:
    """The `RequestGate` every worker and API process shares through one Redis (see module docstring)."""

    def __init__(
        self,
        redis: Redis,
        circuit: CircuitBreaker | None = None,
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
        block_seconds: float = 0.5,
    ) -> None:
        self._redis = redis
        self.circuit = circuit or CircuitBreaker(redis)
        self._margin_us = int(arrival_margin * _US)
        self._max_poll_us = int(max_poll_interval * _US)
        self._grace_us = int(waiter_grace * _US)
        self._max_horizon_us = int(max_horizon * _US)
        self._low_remaining = low_remaining_threshold
        self._slowdown_us = int(slowdown_seconds * _US)
        self._repeat_429_us = int(repeat_429_window * _US)
        self._min_factor = min_backoff_factor
        self._recover = recover_per_second
        self._block_seconds = block_seconds
        self._dispatch: dict[uuid.UUID, _Dispatch] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._acquire_script = register(redis, "gate_acquire")
        self._moved_script = register(redis, "gate_moved")
        self._on_429_script = register(redis, "gate_on_429")
        self._slow_script = register(redis, "gate_slow")
        self._stats_script = register(redis, "gate_stats")
        # Jira Cloud's budgets (CONTRACT 12): asked before a site's slot, as the request leaves and with its answer
        self.cloud = CloudBudgets(redis, arrival_margin=arrival_margin)

    def keys(self, instance_id: uuid.UUID) -> dict[str, str]:
        """The Redis keys used for one instance (hash-tagged so they live in one cluster slot)."""
        return redis_keys.rate_limit(instance_id)

    def _key_list(self, instance_id: uuid.UUID) -> list[str]:
        k = self.keys(instance_id)
        return [k[part] for part in redis_keys.RATE_LIMIT_PARTS]  # the order the scripts' KEYS expect

    # -- acquiring ------------------------------------------------------------------------------------------

    async def acquire(self, instance: InstanceRef, priority: Priority, *, max_wait: float | None = None,
                      write_to: str | None = None, budgets: Sequence[KeyedBudget] = ()) -> float:
        """Wait until one more request may go to `instance` (on Cloud, fitting its pool's budgets; `write_to`: the
        issue a write changes); return the seconds waited (not an attempt).

        Raises `GateClosed` (nothing sent) when the circuit is open, or when the slot is further away than
        `max_wait` seconds for a reason other than this process' own queue (a 429's pause, USER work ahead);
        `RateLimited` (nothing sent) when a Cloud budget stays spent for longer than a second."""
        # time.monotonic(), not loop.time(): uvloop's loop time is cached per loop iteration (ms steps)
        began = time.monotonic()
        await self.cloud.admit(instance, write_to)
        d = self._dispatch.get(instance.id)
        if d is None:
            d = self._dispatch[instance.id] = _Dispatch(instance.id, instance.id.hex[:8])
        while True:
            waiter = _Waiter(int(priority), next(_SEQ), instance, max_wait, tuple(budgets),
                             asyncio.get_running_loop().create_future())
            heapq.heappush(d.waiters, waiter)
            if d.task is None:
                d.task = asyncio.create_task(self._run(d))
            try:
                grant = await waiter.future
                while (ahead := grant.due - time.monotonic()) > 0:  # a timer with ms resolution may fire early
                    await asyncio.sleep(ahead)
            except BaseException:
                if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                    self._consume(waiter.future.result())  # granted, but it will never leave
                raise
            if d.paused_until > time.monotonic():
                # a 429 came back, or the circuit opened, while this slot waited: it stays counted, unused, and we
                # ask again (Redis knows now: the next decision waits for the pause or closes the gate)
                self._consume(grant)
                continue
            _GRANT.set(grant)
            return time.monotonic() - began

    async def _run(self, d: _Dispatch) -> None:
        """The dispatcher of one instance in this process: one Redis call per block of slots."""
        try:
            while True:
                d.waiters = [w for w in d.waiters if not w.future.done()]
                heapq.heapify(d.waiters)
                if not d.waiters:
                    break
                await self._round(d)
        finally:
            d.task = None
            if d.waiters:  # arrived while the last round was finishing
                d.task = asyncio.create_task(self._run(d))
            else:
                self._later(self._settle(d))

    async def _round(self, d: _Dispatch) -> None:
        head = d.waiters[0]
        ref = max(d.waiters, key=lambda w: w.seq).ref  # the newest caller knows the current rate
        budgets = head.budgets
        alike = sum(1 for w in d.waiters if w.budgets == budgets)
        want = 1 if budgets else min(alike, block_size(ref.rate_limit_per_second, self._block_seconds))
        moves, d.moves = d.moves, []
        moved: list[str | int] = [x for member, slot in moves for x in (member, slot)]
        keys = self._key_list(d.instance_id) + list(self.circuit.keys(d.instance_id))
        extra: list[str | int] = [len(budgets)]
        for b in budgets:
            keys += list(redis_keys.budget(d.instance_id, b.name))
            extra += [b.limit, int(b.window * _US)]
        token = uuid.uuid4().hex
        # a USER dispatcher that will still have USER requests waiting after this call stays registered, so BATCH
        # work elsewhere keeps yielding to it between its blocks
        users_left = sum(1 for w in d.waiters if w.priority == 0) > want
        registration = 2 if users_left else (1 if d.queued else 0)
        try:
            raw = await self._acquire_script(keys=keys, args=[
                max(1, int(ref.rate_limit_per_second)), head.priority, d.waiter_id, self._margin_us, want,
                self._max_horizon_us, self._max_poll_us, self._grace_us, self._recover,
                self.circuit.reset_us, self.circuit.trial_ttl_ms, token, self.circuit.half_open_retry_us,
                registration, d.tag, len(moves), *moved, *extra,
            ])
        except RedisError as exc:
            d.moves = moves + d.moves
            self._close(d, d.waiters, GateClosed(
                f"the coordination store (Redis) is unavailable: {exc.__class__.__name__}", retry_in=1.0))
            await asyncio.sleep(0.2)
            return
        code, delay_us, failures = int(raw[0]), int(raw[1]), int(raw[2])
        d.failures_seen = failures
        if code == 2:
            retry_in = max(delay_us / _US, 0.05)
            self._close(d, d.waiters, GateClosed(
                f"JIRA is unavailable (circuit open); trying again in {retry_in:.1f} s", retry_in=retry_in,
                circuit=True))
            return
        if code == 0:
            d.queued = True
            earliest = int(raw[3]) / _US
            impatient = [w for w in d.waiters if w.max_wait is not None and earliest > w.max_wait]
            self._close(d, impatient, GateClosed(
                f"the rate limit of this JIRA has no slot for {earliest:.1f} s", retry_in=earliest))
            await asyncio.sleep(delay_us / _US)
            return
        d.queued = registration == 2
        received = time.monotonic()
        members = [as_text(m) for m in raw[4:]]
        first_us = int(members[0].partition("@")[0])
        for i, member in enumerate(members):
            slot_us = int(member.partition("@")[0])
            waiter = self._next_waiter(d, budgets)
            if waiter is None:
                break  # everyone left meanwhile: the slot stays counted, unused
            grant = _Grant(d, member, slot_us, received + (delay_us + slot_us - first_us) / _US,
                           token if code == 3 and i == 0 else None)
            d.outstanding.add(grant)
            waiter.future.set_result(grant)
        if d.outstanding:
            # the next block is placed only once these have left, so it counts each where it really left (one
            # that has not left shortly after its slot is moved by a later call, or on its own)
            d.consumed.clear()
            last_due = max(g.due for g in d.outstanding)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, last_due - time.monotonic()) + _LEAVING_SECONDS):
                    await d.consumed.wait()

    @staticmethod
    def _next_waiter(d: _Dispatch, budgets: tuple[KeyedBudget, ...]) -> _Waiter | None:
        """The first waiter (priority, then arrival) whose budgets the slots were placed in."""
        for waiter in sorted(d.waiters):
            if not waiter.future.done() and waiter.budgets == budgets:
                d.waiters.remove(waiter)
                heapq.heapify(d.waiters)
                return waiter
        return None

    @staticmethod
    def _close(d: _Dispatch, waiters: Sequence[_Waiter], error: GateClosed) -> None:
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)
        gone = set(map(id, waiters))
        d.waiters = [w for w in d.waiters if id(w) not in gone]
        heapq.heapify(d.waiters)

    def _consume(self, grant: _Grant) -> None:
        if grant.done:
            return
        grant.done = True
        d = grant.dispatch
        d.outstanding.discard(grant)
        if not d.outstanding:
            d.consumed.set()

    def left(self, instance: InstanceRef) -> None:
        """The request granted last in this task leaves now: if later than its slot, its slot moves there."""
        if instance.pool is not None:  # a Cloud write's entry in its issue's log moves to now (this context's copy)
            self._later(self.cloud.left(instance))
        grant = _GRANT.get()
        if grant is None or grant.dispatch.instance_id != instance.id or grant.done:
            return
        late_us = int((time.monotonic() - grant.due) * _US)
        d = grant.dispatch
        if late_us > _LATE_WORTH_MOVING_US:
            d.moves.append((grant.member, grant.slot_us + late_us))
        self._consume(grant)
        if d.moves and d.task is None:  # no call of ours comes soon to carry it: send it on its own
            self._later(self._settle(d))

    async def _settle(self, d: _Dispatch) -> None:
        """Best effort, once the dispatcher is idle: send pending moves, leave the waiter sets."""
        moves, d.moves = d.moves, []
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                if moves:
                    await self._moved_script(keys=[self.keys(d.instance_id)["grants"]],
                                             args=list(itertools.chain.from_iterable(moves)))
                if d.queued and d.task is None:
                    d.queued = False
                    pipe = self._redis.pipeline(transaction=False)
                    for k in self._key_list(d.instance_id)[2:]:
                        pipe.zrem(k, d.waiter_id)
                    await pipe.execute()

    def _later(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- answers --------------------------------------------------------------------------------------------

    async def observe(self, instance: InstanceRef, status: int | None, headers: Mapping[str, str], *,
                      sent: bool = True, write_to: str | None = None, objects: int = 0) -> None:
        """Hear the answer to the request this task let through (`status` None: no answer, a transport failure;
        `sent` False: nothing left at all). A 429 pauses every caller for max(Retry-After, 1 s); a nearly spent
        JIRA budget slows us briefly; failures and answers drive the instance's circuit."""
        grant = _GRANT.get()
        if grant is not None and grant.dispatch.instance_id == instance.id:
            _GRANT.set(None)
            self._consume(grant)
        else:
            grant = None
        d = self._dispatch.get(instance.id)
        trial = grant.trial if grant is not None else None
        # on Cloud: a read's objects charged to the pool; a 429 whose reason names the pool, the site's quota or an
        # issue pauses that (True), a burst 429 is the instance's own pause below
        cloud_paused = instance.pool is not None and sent and await self.cloud.observe(
            instance, status, headers, write_to=write_to, objects=objects)
        if not sent or status == 429:
            if trial is not None:
                await self.circuit.release_permit(instance.id, trial)
            if status == 429 and not cloud_paused:
                retry_after = retry_after_seconds(response_header(headers, "retry-after"))
                if d is not None:
                    d.paused_until = max(d.paused_until, time.monotonic() + retry_after)
                await self._on_429_script(keys=[self.keys(instance.id)["state"]], args=[
                    int(retry_after * _US), self._repeat_429_us, self._min_factor, self._recover, _STATE_TTL_MS])
            return
        if status is None or status >= 500:
            state = await self.circuit.record_failure(instance.id)
            if d is not None:
                d.failures_seen += 1
                if state == "open":
                    d.paused_until = max(d.paused_until, time.monotonic() + self.circuit.reset_us / _US)
            return
        if trial is not None or d is None or d.failures_seen:
            await self.circuit.record_success(instance.id)
            if d is not None:
                d.failures_seen = 0
        remaining = response_header(headers, "x-ratelimit-remaining")
        if remaining is None:
            return
        try:
            value = int(remaining.strip())
        except ValueError:
            return
        if value <= self._low_remaining:
            await self._slow_script(keys=[self.keys(instance.id)["state"]], args=[self._slowdown_us, _STATE_TTL_MS])

    # -- the dashboard --------------------------------------------------------------------------------------

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
