"""The pushers of one worker process: one per JIRA instance whose push lease this process holds.

* **Wake-ups.** Every worker listens on one Redis channel. After committing a change due now, the API (or any
  process) publishes `<instance id> <priority>` (`app.services.dispatch`). The lease holder's pusher takes the
  instance's due entries at once; if nobody holds the lease, the workers race for it (`SET NX`), the least busy
  one first, and the winner starts a pusher. A worker claims free leases one at a time and waits a moment per
  instance it already pushes before each, so a burst of wake-ups (a backfill over many instances) spreads the
  instances over the workers instead of all going to the one that heard the burst first.
* **Leases** (`ttsync:push:{<instance>}:lease`, value: the holder's process id) last `JIRA_TIMEOUT_SECONDS` + 10 s
  and are all renewed together every two seconds. A pusher sends nothing once its lease may lapse before a
  request sent now would be over (`may_send`), so two processes never push one instance at once; a killed worker's
  leases lapse, and the sweeper wakes their instances (the PostgreSQL outbox says what is due).
* A pusher with nothing due, and nothing announced for a few seconds, ends and gives its lease back.
* **Balance.** With its lease renewals every worker also notes in Redis how many instances it pushes. One that
  pushes two or more above another worker and above its fair share (all instances pushed ÷ live workers, rounded
  up) hands the surplus over: those pushers finish what they sent, record it and end, the leases are given back
  and the instances woken, and the less busy workers take them (the one handing over stays out for a moment).
  So workers started later (a deploy, a scale-out, a backlog found by the first worker up) share the work.
* **Stop** (SIGTERM): no new entries are taken, requests in flight finish (at most `STOP_GRACE_SECONDS`), their
  answers are recorded, and the leases are given back so other workers take over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from app import redis_keys
from app.domain.priority import Priority
from app.jira.locks import Leases
from app.services.dispatch import RedisWake, parse_wake
from app.services.push import InstancePusher
from workers.context import WorkerContext

log = logging.getLogger("workers.pushers")

STOP_GRACE_SECONDS = 20.0  # in-flight requests may finish this long after SIGTERM
RENEW_EVERY_SECONDS = 2.0
LINGER_SECONDS = 5.0  # an idle pusher keeps its lease this long for the next change
# before racing for a free lease, a worker waits this long per instance it already pushes: the least busy wins
BALANCE_STEP_SECONDS = 0.005
BALANCE_MAX_SECONDS = 0.1
LOAD_FRESH_SECONDS = 3 * RENEW_EVERY_SECONDS  # a worker whose load note is older is taken for gone
HANDED_OVER_SECONDS = 5.0  # a worker does not take back an instance it handed over for this long


@dataclass(eq=False)
class _Running:
    pusher: InstancePusher
    task: asyncio.Task[None] | None = None
    closing: bool = False  # ended, giving its lease back
    handing_over: bool = False  # to end and leave the instance to a less busy worker
    rewake: Priority | None = None  # a wake-up that came while closing: start again afterwards
    done: asyncio.Event = field(default_factory=asyncio.Event)


class PushFleet:
    """This process' pushers, their leases and the wake-ups they listen to (see module docstring)."""

    def __init__(self, wc: WorkerContext) -> None:
        self.wc = wc
        settings = wc.settings
        self.leases = Leases(wc.redis, holder=wc.holder, ttl=settings.push_lease_seconds)
        # a request sent now is answered or abandoned within the JIRA timeout: it must end inside the lease
        self._send_margin = settings.jira_timeout_seconds + 1.0
        self._remote = RedisWake(wc.redis)
        self.deps = replace(wc.deps, wake=self)  # pushers wake each other through the fleet
        self._running: dict[uuid.UUID, _Running] = {}
        # woken instances whose lease this process may try to take: (most urgent priority heard, when first heard)
        self._pending: dict[uuid.UUID, tuple[Priority, float]] = {}
        self._claimer: asyncio.Task[None] | None = None
        self._handed_over: dict[uuid.UUID, float] = {}  # instance -> until when this process leaves it to others
        self._background: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()
        self.listening = asyncio.Event()

    # -- wake-ups -------------------------------------------------------------------------------------------

    async def wake(self, due: Mapping[uuid.UUID, Priority]) -> None:
        """`PushWake` for this process' own units of work: its own pushers directly, the others through Redis."""
        elsewhere = {}
        for instance_id, priority in due.items():
            running = self._running.get(instance_id)
            if running is not None and not running.closing:
                running.pusher.wake(priority)
            else:
                elsewhere[instance_id] = priority
        await self._remote.wake(elsewhere)

    def on_wake(self, instance_id: uuid.UUID, priority: Priority) -> None:
        """A wake-up heard on the channel."""
        if self.stopping.is_set():
            return
        running = self._running.get(instance_id)
        if running is not None:
            if running.closing:
                running.rewake = min(priority, running.rewake if running.rewake is not None else priority)
            else:
                running.pusher.wake(priority)
            return
        pending = self._pending.get(instance_id)
        heard = asyncio.get_running_loop().time()
        self._pending[instance_id] = (priority, heard) if pending is None else (min(pending[0], priority), pending[1])
        if self._claimer is None or self._claimer.done():
            self._claimer = self._spawn(self._claim_pending())

    async def _claim_pending(self) -> None:
        """Try the woken instances' leases one at a time, the most urgent first (the earliest heard among equals).
        A free lease is taken `BALANCE_STEP_SECONDS` per instance this process already pushes after the wake-up
        was heard (and at least half of that after this process got to it), by every worker alike: the least busy
        worker gets there first. One claim after another, each sees the count the earlier ones changed (concurrent
        claims did not: a burst of wake-ups for 20 instances all went to one worker)."""
        loop = asyncio.get_running_loop()
        while self._pending and not self.stopping.is_set():
            instance_id = min(self._pending, key=self._pending.__getitem__)
            priority, heard = self._pending.pop(instance_id)
            if instance_id in self._running or self._handed_over.get(instance_id, 0.0) > loop.time():
                continue
            key = redis_keys.push_lease(instance_id)
            try:
                if self._running:
                    if await self.wc.redis.exists(key):
                        continue  # another worker pushes it (and heard the same wake-up)
                    # counted from when the wake-up was heard, and never less than half of it from now: a process
                    # that got here late (busy, descheduled) still lets a less busy one go first
                    await asyncio.sleep(max(heard + self._balance_delay() - loop.time(), self._balance_delay() / 2))
                    if self.stopping.is_set() or instance_id in self._running:
                        continue
                if await self.leases.take(key):
                    self._start(instance_id, priority)
            except Exception as exc:
                log.warning("could not take the push lease of instance %s: %s", instance_id, exc.__class__.__name__)

    def _balance_delay(self) -> float:
        return min(BALANCE_MAX_SECONDS, BALANCE_STEP_SECONDS * len(self._running))

    def _start(self, instance_id: uuid.UUID, priority: Priority) -> None:
        key = redis_keys.push_lease(instance_id)
        running: _Running

        def may_send() -> bool:
            return not running.handing_over and self.leases.valid_for(key) > self._send_margin

        pusher = InstancePusher(self.deps, instance_id, linger_seconds=LINGER_SECONDS, holder=self.wc.holder,
                                may_send=may_send)
        pusher.wake(priority)
        running = _Running(pusher)
        self._running[instance_id] = running
        running.task = asyncio.create_task(self._drive(instance_id, running))

    async def _drive(self, instance_id: uuid.UUID, running: _Running) -> None:
        key = redis_keys.push_lease(instance_id)
        try:
            await running.pusher.run(self.stopping, grace_seconds=STOP_GRACE_SECONDS)
        except Exception:
            log.exception("the pusher of instance %s stopped; the sweeper hands its entries on", instance_id)
        finally:
            running.closing = True
            log.info("pusher of instance %s ended after %d request(s)", instance_id, running.pusher.pushed)
            await self.leases.release(key)
            del self._running[instance_id]
            running.done.set()
            if running.handing_over and not self.stopping.is_set():
                self._handed_over[instance_id] = asyncio.get_running_loop().time() + HANDED_OVER_SECONDS
                with contextlib.suppress(Exception):  # unreachable Redis: the sweeper wakes it later
                    await self._remote.wake({instance_id: Priority.BATCH})
            if running.rewake is not None and not self.stopping.is_set():
                self.on_wake(instance_id, running.rewake)

    # -- the loops ------------------------------------------------------------------------------------------

    async def listen(self) -> None:
        """Hear wake-ups for as long as the process runs (reconnecting after Redis hiccups)."""
        while not self.stopping.is_set():
            pubsub = self.wc.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(redis_keys.PUSH_WAKE_CHANNEL)
                self.listening.set()
                while not self.stopping.is_set():
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    parsed = parse_wake(message["data"])
                    if parsed is not None:
                        self.on_wake(*parsed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("wake-up channel lost (%s); listening again in 1 s", exc.__class__.__name__)
                await asyncio.sleep(1.0)
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def renew(self) -> None:
        """Every few seconds, extend every lease still ours (until cancelled, after the pushers stopped); a lost
        one stops its pusher (may_send turns False)."""
        while True:
            try:
                lost = await self.leases.renew()
                if lost:
                    log.warning("lost the push lease(s) %s; another worker pushes those instances", lost)
                    for running in list(self._running.values()):
                        running.pusher.wake()  # it notices at once that it may no longer send
            except Exception as exc:
                log.warning("renewing the push leases failed (%s); pushers stop sending before they could lapse",
                            exc.__class__.__name__)
            try:
                self._hand_over(await self._loads())
            except Exception as exc:
                log.warning("could not compare the workers' loads (%s)", exc.__class__.__name__)
            await asyncio.sleep(RENEW_EVERY_SECONDS)

    async def _loads(self) -> dict[str, int]:
        """Note how many instances this process pushes; the counts of every worker alive (this one included)."""
        now = time.time()
        pipe = self.wc.redis.pipeline(transaction=False)
        pipe.hset(redis_keys.PUSH_LOAD, self.wc.holder, f"{len(self._pushing())} {now:.3f}")
        pipe.hgetall(redis_keys.PUSH_LOAD)
        _, notes = await pipe.execute()
        loads: dict[str, int] = {}
        gone = []
        for holder, note in notes.items():
            count, _, at = note.decode().partition(" ")
            if now - float(at) <= LOAD_FRESH_SECONDS:
                loads[holder.decode()] = int(count)
            elif now - float(at) > 10 * LOAD_FRESH_SECONDS:
                gone.append(holder.decode())
        if gone:
            await self._forget_loads(*gone)
        return loads

    async def _forget_loads(self, *holders: str) -> None:
        pipe = self.wc.redis.pipeline(transaction=False)
        pipe.hdel(redis_keys.PUSH_LOAD, *holders)
        await pipe.execute()

    def _pushing(self) -> list[uuid.UUID]:
        return [i for i, r in self._running.items() if not (r.closing or r.handing_over)]

    def _hand_over(self, loads: Mapping[str, int]) -> None:
        """Leave the instances above this process' fair share to less busy workers (see module docstring)."""
        now = asyncio.get_running_loop().time()
        self._handed_over = {i: until for i, until in self._handed_over.items() if until > now}
        if self._handed_over or any(r.handing_over for r in self._running.values()):
            return  # the last hand-over is still under way: the notes do not count those instances yet
        mine = self._pushing()
        if len(loads) < 2 or self.stopping.is_set():
            return
        fair = math.ceil(sum(loads.values()) / len(loads))
        surplus = min(len(mine) - fair, len(mine) - min(loads.values()) - 1)
        for instance_id in mine[len(mine) - surplus:] if surplus > 0 else []:
            running = self._running[instance_id]
            running.handing_over = True
            running.pusher.wake()  # it sees at once that it may no longer send, finishes and ends
            log.info("handing instance %s over to a less busy worker", instance_id)

    async def shutdown(self) -> None:
        """Stop taking entries, let the requests in flight finish, record them, give the leases back."""
        self.stopping.set()
        with contextlib.suppress(Exception):
            await self._forget_loads(self.wc.holder)
        for running in list(self._running.values()):
            running.pusher.wake()
        waiting = [r.done.wait() for r in list(self._running.values())]
        if waiting:
            await asyncio.wait([asyncio.ensure_future(w) for w in waiting], timeout=STOP_GRACE_SECONDS + 10)
        for task in list(self._background):
            task.cancel()

    @property
    def instances(self) -> list[uuid.UUID]:
        return list(self._running)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task
