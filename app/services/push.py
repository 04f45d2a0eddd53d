"""Pushing one JIRA instance's due entries: the sync engine's use case (CONTRACT section 10).

One `InstancePusher` per JIRA instance runs in the one worker process that holds the instance's push lease
(`workers/pushers.py`). It *takes* due entries from PostgreSQL (the outbox) in priority order, a second's worth
at a time, and plans each one's next JIRA request in that same short transaction (`app.domain.sync.next_step`;
a create is marked unconfirmed there, before its request can leave). It sends the requests at the rate limiter's
pace through the JIRA client (the request gate reserves slots for a block of requests in one Redis call), never
two at once to one JIRA issue, and records each answer through the entry aggregate, several per transaction.
An entry still due afterwards (a newer change arrived, a move needs its second step, a retry after backoff) is
simply taken again; one that is due later is taken when its time comes.

What keeps the guarantees: every decision is made from what PostgreSQL says at that moment; a create whose
outcome is unknown is looked for (its `#<id>:` anchor) before creating again (10.2); an entry is never pushed by
two tasks at once (one lease per instance, and this pusher never takes an entry it is pushing); waiting for a
rate-limit slot or an open circuit holds no entry and no connection: the pusher sleeps until it can go (11);
nothing leaves once the lease may have lapsed (`may_send`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.clock import now_utc
from app.config import Settings
from app.db.models import ConnectionRow, EntryRow, JiraInstanceRow
from app.db.repositories import entries as repo
from app.db.repositories import jira as jira_repo
from app.domain.entry import InstanceRoute, NotificationKind, SyncStatus, route
from app.domain.entry_sync import EntrySync
from app.domain.priority import Priority
from app.domain.snapshot import WorklogSnapshot
from app.domain.sync import Create, Delete, Done, Find, JiraStep, Update, backoff_seconds, next_step
from app.domain.worklog import WorklogMarker, jira_time_ms_or_none
from app.jira.calls import JiraCall
from app.jira.client import JiraClient, JiraTarget
from app.jira.egress import EgressRefused
from app.jira.errors import (
    AuthRejected,
    GateClosed,
    JiraError,
    NotFound,
    PermanentError,
    RateLimited,
    TransientError,
)
from app.jira.resources import RemoteWorklog
from app.logging_setup import bind_log_context
from app.services.audit import audit_calls
from app.services.connect import reject_connection
from app.services.credentials import Credentials
from app.services.dispatch import PushWake
from app.services.entries import settle_conflict_for_timetracker
from app.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# how long a push's request may wait for its rate-limit slot or an open circuit before it is deferred to when
# it can go (CONTRACT 11: it holds nothing while deferred; the entry stays due)
PATIENCE_SECONDS = 1.0
# how far ahead the pusher takes entries: about a second of the instance's rate (and a few for a slow JIRA)
AHEAD_SECONDS = 1.0
MAX_AHEAD = 50
# a wait for a locked entry or a due time just passed is at least this long (no busy loop)
MIN_WAIT_SECONDS = 0.05
# answers are recorded in batches: once this old (or as soon as nothing else is in flight), so a backlog costs a
# transaction per several entries while a single change is recorded at once
RECORD_AFTER_SECONDS = 0.3
# the instance row (rate, name), its tenant's routes and its users' connections are read again after this long
LOOKUPS_SECONDS = 0.5


@dataclass
class PushDeps:
    sessionmaker: async_sessionmaker[AsyncSession]
    credentials: Credentials
    jira: JiraClient
    settings: Settings
    wake: PushWake | None = None
    rng: Callable[[], float] = field(default=random.random)


@dataclass(frozen=True)
class _Planned:
    """One JIRA request to make for an entry, as whom, and for which version of it."""

    tenant_id: uuid.UUID
    entry_id: str
    version: int
    step: JiraStep
    target: JiraTarget
    instance: JiraInstanceRow
    jira_username: str | None  # the connection's own JIRA user: only its anchored worklog may be adopted
    connected_at: datetime | None  # which connect of the user the request's credential comes from


@dataclass
class _Outcome:
    """What became of one planned request: JIRA's answer, or why there is none."""

    planned: _Planned
    calls: list[JiraCall] = field(default_factory=list)
    result: RemoteWorklog | bool | None = None
    error: JiraError | None = None
    crashed: bool = False  # an unexpected error: record nothing, the entry stays due
    at: float = 0.0  # time.monotonic() when it was over


@dataclass
class _Lookups:
    """What planning and recording read besides the entries, read at most every `LOOKUPS_SECONDS`."""

    at: float
    instance: JiraInstanceRow | None
    routes: list[InstanceRoute]
    connections: dict[str, ConnectionRow | None] = field(default_factory=dict)


def _finish(entry: EntrySync, step: Done) -> None:
    entry.finish(step.status, step.reason)
    if entry.entry.instance_id is not None:
        metrics.SYNC_OUTCOMES.labels(str(entry.entry.instance_id), step.status.value).inc()


async def _notify_once(
    session: AsyncSession, *, tenant_id: uuid.UUID, user: str, kind: NotificationKind, message: str,
    entry_id: str | None, instance_id: uuid.UUID | None, per_entry: bool,
) -> None:
    """One unread notification per (user, instance, kind) — or per entry — instead of one per push."""
    await repo.lock_notification_key(session, tenant_id=tenant_id, user=user, kind=kind,
                                     jira_instance_id=instance_id, entry_id=entry_id if per_entry else None)
    if not await repo.has_unread_notification(session, tenant_id=tenant_id, user=user, kind=kind,
                                              jira_instance_id=instance_id, entry_id=entry_id, per_entry=per_entry):
        repo.add_notification(session, tenant_id=tenant_id, user=user, kind=kind, message=message,
                              entry_id=entry_id, jira_instance_id=instance_id)


async def _auth_required(
    uow: UnitOfWork, entry: EntrySync, instance: JiraInstanceRow | None, connection: ConnectionRow | None,
) -> None:
    row = entry.entry
    name = instance.name if instance else "its JIRA instance"
    if connection is None:
        message = f"{row.user} has not connected a JIRA account for {name}: connect it to sync this entry"
    else:
        message = f"JIRA connection of {row.user} to {name} was rejected — reconnect"
    entry.require_auth(message)
    await _notify_once(uow.session, tenant_id=row.tenant_id, user=row.user, kind=NotificationKind.AUTH_REQUIRED,
                       message=message, entry_id=row.id, instance_id=instance.id if instance else None,
                       per_entry=False)


def _earliest(*seconds: float | None) -> float | None:
    given = [s for s in seconds if s is not None]
    return min(given) if given else None


def _found(worklog: RemoteWorklog) -> WorklogSnapshot | None:
    """What the anchored worklog JIRA holds is (None when its `started` is unreadable: the next step rewrites it)."""
    try:
        return WorklogSnapshot.of_remote(worklog.started, worklog.time_spent_seconds, worklog.comment)
    except ValueError:
        return None


class InstancePusher:
    """Pushes the due entries of one JIRA instance while this process may (see module docstring)."""

    def __init__(self, deps: PushDeps, instance_id: uuid.UUID, *, may_send: Callable[[], bool] = lambda: True,
                 linger_seconds: float = 5.0, holder: str = "process") -> None:
        self.d = deps
        self.jira_instance_id = instance_id
        self._may_send = may_send
        # this pusher's name in the claims it puts on the entries it takes
        self.token = f"{holder[:60]}/{uuid.uuid4().hex[:12]}"
        self._claim_for = timedelta(seconds=deps.settings.push_claim_seconds)
        self._linger = linger_seconds
        # an entry taken stays busy until its answer is recorded: it is never planned again from a state its own
        # answer is about to change
        self._busy: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}  # entry id → its push, while it runs
        self._outcomes: list[_Outcome] = []
        self._changed = asyncio.Event()  # an outcome arrived or a wake-up came
        self._urgent = False  # a USER change was announced: take it even if the pipeline is full
        self._closed_until = 0.0  # time.monotonic(): the gate said nothing goes before then
        self._issue_locks: dict[str, tuple[asyncio.Lock, int]] = {}  # issue → (its lock, pushes using it)
        self._rate = 1
        self._lookups: _Lookups | None = None
        self._stop = asyncio.Event()
        self.pushed = 0  # requests answered (for the worker's log)

    # -- driving it -----------------------------------------------------------------------------------------

    def wake(self, priority: Priority = Priority.BATCH) -> None:
        """Something became due for this instance (`priority` USER: a person is waiting for it)."""
        if priority == Priority.USER:
            self._urgent = True
        self._changed.set()

    @property
    def ahead(self) -> int:
        """How many entries to have taken at once: about a second of the instance's rate."""
        return max(2, min(MAX_AHEAD, math.ceil(self._rate * AHEAD_SECONDS) + 1))

    async def run(self, stop: asyncio.Event, *, grace_seconds: float = 20.0, until_idle: bool = False) -> None:
        """Push until nothing is due (and nothing came for `linger_seconds`), `stop` is set or sending is no longer
        allowed; then let the requests in flight finish (at most `grace_seconds`) and record them. `until_idle`:
        return as soon as nothing is due now (tests and tools push this way, in their own process)."""
        idle_since: float | None = None
        self._stop = stop
        try:
            while not stop.is_set() and self._may_send():
                self._changed.clear()
                record_in = self._record_in()
                if record_in == 0:
                    await self._record(self._take_outcomes())
                    record_in = None
                await self._fill()
                if self._busy or self._outcomes:
                    idle_since = None
                    # until an answer or a wake-up comes, answers are due to be recorded, or the gate opens again
                    await self._wait(_earliest(record_in, self._until_open()))
                    continue
                closed = self._until_open()
                if until_idle:
                    return
                if closed is not None:
                    idle_since = None
                    await self._wait(closed)
                    continue
                when = await self._next_due()
                if when is not None:
                    idle_since = None
                    await self._wait(max(MIN_WAIT_SECONDS, when))
                    continue
                idle_since = idle_since or time.monotonic()
                left = self._linger - (time.monotonic() - idle_since)
                if left <= 0:
                    return
                await self._wait(left)
        finally:
            await self._drain(grace_seconds)

    async def _wait(self, seconds: float | None) -> None:
        if self._changed.is_set():
            return
        try:
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        except TimeoutError:
            pass

    def _until_open(self) -> float | None:
        left = self._closed_until - time.monotonic()
        return left if left > 0 else None

    def _record_in(self) -> float | None:
        """Seconds until the answers waiting should be recorded (0: now), None when none wait."""
        if not self._outcomes:
            return None
        if not self._tasks or len(self._outcomes) >= self.ahead // 2:
            return 0.0
        return max(0.0, self._outcomes[0].at + RECORD_AFTER_SECONDS - time.monotonic())

    async def _drain(self, grace_seconds: float) -> None:
        """Requests in flight finish (bounded); their answers are recorded; the rest stays due."""
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks.values()), timeout=grace_seconds)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self._outcomes:
            try:
                await self._record(self._take_outcomes())
            except Exception:
                log.exception("recording the last answers of instance %s failed; those entries are pushed again",
                              self.jira_instance_id)

    def _take_outcomes(self) -> list[_Outcome]:
        outcomes, self._outcomes = self._outcomes, []
        return outcomes

    # -- taking and planning --------------------------------------------------------------------------------

    async def _fill(self) -> int:
        """Take due entries into the pipeline when it runs low (or a person waits); returns how many were taken."""
        if self._until_open() is not None:
            return 0
        urgent, self._urgent = self._urgent, False
        # refilled when half empty (pushes not over yet; answers waiting to be recorded do not hold the pipeline
        # up), so a take carries several entries; a person's change gets in at once
        if not urgent and len(self._tasks) > self.ahead // 2:
            return 0
        room = self.ahead + (self.ahead // 2 if urgent else 0) - len(self._tasks)
        if room <= 0:
            return 0
        planned = await self._take(room)
        for p in planned:
            self._busy.add(p.entry_id)
            self._tasks[p.entry_id] = asyncio.create_task(self._push(p))
        return len(planned)

    async def _take(self, limit: int) -> list[_Planned]:
        """One transaction: lock up to `limit` due entries, plan each one's next request, finish those with none."""
        now = now_utc()
        async with UnitOfWork.open(self.d.sessionmaker, self.d.wake) as uow:
            rows = await repo.take_due(uow.session, self.jira_instance_id, now=now, limit=limit, busy=list(self._busy))
            if not rows:
                return []
            lookups = await self._lookups_for(uow.session, rows[0].tenant_id)
            planned: list[_Planned] = []
            for row in rows:
                plan = await self._plan(uow, row, lookups, now)
                if plan is not None:
                    planned.append(plan)
            await uow.commit()
        return planned

    async def _lookups_for(self, session: AsyncSession, tenant_id: uuid.UUID) -> _Lookups:
        """The instance, the tenant's routes and the connections read so far, fresh within `LOOKUPS_SECONDS` (so a
        changed rate, route or connection takes effect within about a second)."""
        if self._lookups is None or time.monotonic() - self._lookups.at > LOOKUPS_SECONDS:
            at = time.monotonic()
            instance = await jira_repo.get_instance(session, tenant_id, self.jira_instance_id)
            self._lookups = _Lookups(at, instance, await repo.instance_routes(session, tenant_id))
            if instance is not None:
                self._rate = max(1, instance.rate_limit_per_second)
        return self._lookups

    async def _plan(self, uow: UnitOfWork, row: EntryRow, lookups: _Lookups, now: datetime) -> _Planned | None:
        entry = uow.entry(row, now=now)
        step = next_step(entry.push_state(route(row.ticket, row.requested_instance_id, lookups.routes)))
        if isinstance(step, Done):
            _finish(entry, step)
            return None
        if step.instance_id != self.jira_instance_id:
            return None  # routed elsewhere meanwhile: the aggregate announced it to that instance's pusher
        instance, connections = lookups.instance, lookups.connections
        if row.user not in connections and instance is not None:
            connections[row.user] = await jira_repo.get_connection(uow.session, row.tenant_id, self.jira_instance_id,
                                                                   row.user)
        connection = connections.get(row.user)
        target = self._target(instance, connection, row)
        if target is None and instance is not None:
            # the look-ups may be up to LOOKUPS_SECONDS old: a user who just reconnected must not be parked again
            # on what the connection was before (nothing would wake the entry until the next reconnect)
            connection = connections[row.user] = await jira_repo.get_connection(
                uow.session, row.tenant_id, self.jira_instance_id, row.user)
            target = self._target(instance, connection, row)
        if target is None:
            await _auth_required(uow, entry, instance, connection)
            return None
        assert instance is not None and connection is not None  # a target needs both
        entry.claim(self.token, now + self._claim_for)
        if isinstance(step, Create):
            # from here until JIRA's answer is recorded, a create may happen without our knowing: say so first
            entry.mark_create_unconfirmed(step.instance_id, step.issue)
        return _Planned(row.tenant_id, row.id, row.version, step, replace(target, max_wait=PATIENCE_SECONDS),
                        instance, connection.jira_username, connection.connected_at)

    def _target(self, instance: JiraInstanceRow | None, connection: ConnectionRow | None,
                row: EntryRow) -> JiraTarget | None:
        if instance is None or connection is None:
            return None
        return self.d.credentials.user_target(instance, connection, priority=Priority(row.priority))

    async def _next_due(self) -> float | None:
        """Seconds until the next entry of this instance is due (0 if one is due now but was locked), or None."""
        async with self.d.sessionmaker() as session:
            when = await repo.next_due_at(session, self.jira_instance_id, busy=list(self._busy))
        return None if when is None else max(0.0, (when - now_utc()).total_seconds())

    # -- one request ----------------------------------------------------------------------------------------

    async def _push(self, p: _Planned) -> None:
        bind_log_context(tenant_id=str(p.tenant_id), entry_id=p.entry_id, instance_id=str(self.jira_instance_id))
        outcome = _Outcome(p)

        async def collect(call: JiraCall) -> None:
            outcome.calls.append(call)

        issue = p.step.issue.strip().upper()
        lock, users = self._issue_locks.get(issue) or (asyncio.Lock(), 0)
        self._issue_locks[issue] = (lock, users + 1)
        try:
            async with lock:  # writes to one JIRA issue are never concurrent (10.5)
                if self._stop.is_set() or not self._may_send():
                    raise GateClosed("this worker no longer pushes this instance", retry_in=0.0)
                outcome.result = await self._execute(p, collect)
        except GateClosed as exc:
            outcome.error = exc
            self._closed_until = max(self._closed_until, time.monotonic() + exc.retry_in)
        except RateLimited as exc:
            outcome.error = exc
            if exc.issue is None:  # the instance waits; a per-issue limit holds only that entry (below)
                self._closed_until = max(self._closed_until, time.monotonic() + exc.retry_after)
        except JiraError as exc:
            outcome.error = exc
        except asyncio.CancelledError:
            outcome.crashed = True
            raise
        except Exception:
            log.exception("push of entry %s failed unexpectedly; it stays due", p.entry_id)
            outcome.crashed = True
            self._closed_until = max(self._closed_until, time.monotonic() + 1.0)
        finally:
            lock, users = self._issue_locks[issue]
            if users > 1:
                self._issue_locks[issue] = (lock, users - 1)
            else:
                del self._issue_locks[issue]
            self._tasks.pop(p.entry_id, None)
            outcome.at = time.monotonic()
            self._outcomes.append(outcome)
            self._changed.set()

    async def _execute(
        self, p: _Planned, on_call: Callable[[JiraCall], Awaitable[None]],
    ) -> RemoteWorklog | bool | None:
        jira, step, target = self.d.jira, p.step, p.target
        marker = WorklogMarker(str(p.tenant_id), p.entry_id)  # on Cloud also the worklog's property
        match step:
            case Create():
                return await jira.create_worklog(target, step.issue, step.body, marker=marker, on_call=on_call)
            case Update():
                return await jira.update_worklog(target, step.issue, step.worklog_id, step.body, marker=marker,
                                                 on_call=on_call)
            case Delete():
                return await jira.delete_worklog(target, step.issue, step.worklog_id, on_call=on_call)
            case Find():
                # only the connection's own JIRA user's worklog may be adopted; a connection that never learnt
                # who it is (JIRA's myself failed at connect time) asks now
                author = p.jira_username or (await jira.myself(target, on_call=on_call)).name
                return await jira.find_our_worklog(target, step.issue, marker, author=author, on_call=on_call)

    # -- recording ------------------------------------------------------------------------------------------

    async def _record(self, outcomes: Sequence[_Outcome]) -> None:
        """One transaction: each answer recorded through the entry aggregate, with its audit rows. The entries are
        free to be taken again afterwards (also when recording failed: they are planned afresh from PostgreSQL)."""
        try:
            await self._record_all(outcomes)
        finally:
            self._busy.difference_update(o.planned.entry_id for o in outcomes)

    async def _record_all(self, outcomes: Sequence[_Outcome]) -> None:
        tenant_id = outcomes[0].planned.tenant_id
        async with UnitOfWork.open(self.d.sessionmaker, self.d.wake) as uow:
            rows = await repo.get_entries(uow.session, tenant_id, [o.planned.entry_id for o in outcomes], lock=True)
            routes = (await self._lookups_for(uow.session, tenant_id)).routes
            for outcome in outcomes:
                p = outcome.planned
                audit_calls(uow.session, p.tenant_id, outcome.calls, entry_id=p.entry_id)
                row = rows.get(p.entry_id)
                if row is None:
                    continue
                entry = uow.entry(row)
                if not entry.release(self.token):
                    # our claim lapsed and another pusher took the entry: it plans from PostgreSQL, and a late answer
                    # recorded now could undo its plan (a create found missing would be made twice). The facts are
                    # found again: a create of unknown outcome is looked for before anything is created.
                    log.warning("answer for entry %s came after its claim lapsed; not recorded", p.entry_id)
                    continue
                if outcome.crashed:
                    continue
                self.pushed += len(outcome.calls)
                await self._apply(uow, entry, outcome, routes)
            await uow.commit()

    async def _apply(self, uow: UnitOfWork, entry: EntrySync, o: _Outcome, routes: Sequence[InstanceRoute]) -> None:
        p, error = o.planned, o.error
        match error:
            case None:
                await self._record_answer(uow, entry, o, routes)
            case GateClosed() | RateLimited():
                if isinstance(p.step, Create):
                    entry.create_refused()  # nothing left, or JIRA answered 429: it certainly created nothing
                if isinstance(error, RateLimited) and error.issue is not None:
                    entry.retry_later(error.retry_after, error.message)  # no attempt spent
            case AuthRejected():
                self._lookups = None  # the connections read before are stale now
                connection = await reject_connection(uow.session, tenant_id=p.tenant_id, instance_id=p.instance.id,
                                                     user=entry.entry.user, oauth_problem=error.oauth_problem,
                                                     entry_id=p.entry_id, connected_at=p.connected_at)
                if connection is not None and connection.status == "connected":
                    # the user connected again while this request (with the old token) was out: a 401 applied
                    # nothing, and the entry stays due for the new connection
                    if isinstance(p.step, Create):
                        entry.create_refused()
                    return
                await _auth_required(uow, entry, p.instance, connection)
                metrics.SYNC_OUTCOMES.labels(str(self.jira_instance_id), SyncStatus.AUTH_REQUIRED.value).inc()
            case EgressRefused():
                # nothing was sent (CONTRACT 11), and retrying cannot help
                await self._record_failure(uow, entry, o, error, permanent=True)
            case NotFound() if isinstance(p.step, Update):
                # the worklog was deleted in JIRA while we hold a newer local change: TimeTracker wins, write it
                # again (a missing issue then fails the create with JIRA's message)
                await self._record_answer(uow, entry, o, routes, lost_worklog=True)
            case PermanentError():
                await self._record_failure(uow, entry, o, error, permanent=True)
            case TransientError():
                await self._record_failure(uow, entry, o, error, permanent=False)
            case _:
                await self._record_failure(uow, entry, o, error, permanent=False)

    async def _record_answer(self, uow: UnitOfWork, entry: EntrySync, o: _Outcome, routes: Sequence[InstanceRoute],
                             *, lost_worklog: bool = False) -> None:
        """Store what JIRA now holds (always: it is a fact), then finish if nothing changed meanwhile."""
        step, result, row = o.planned.step, o.result, entry.entry
        if isinstance(step, Create | Update) and isinstance(result, RemoteWorklog):
            entry.record_written(worklog_id=result.id, instance_id=step.instance_id, issue=step.issue,
                                 written=WorklogSnapshot.of_body(step.body),
                                 remote_updated_ms=jira_time_ms_or_none(result.updated))
        elif isinstance(step, Delete) or lost_worklog:
            entry.forget_worklog()
        elif isinstance(step, Find):
            if isinstance(result, RemoteWorklog):
                entry.record_written(worklog_id=result.id, instance_id=step.instance_id, issue=step.issue,
                                     written=_found(result), remote_updated_ms=jira_time_ms_or_none(result.updated))
            else:
                entry.record_not_found()
        if entry.status is SyncStatus.CONFLICT and isinstance(step, Create | Update):
            # JIRA's edit was seen (and a conflict declared) while this write was on its way: the write replaced
            # that edit, so JIRA holds exactly this entry again. Say so rather than leave a conflict whose "JIRA's
            # state" no longer exists.
            await settle_conflict_for_timetracker(
                uow, entry, why="by a push that was in flight when JIRA's edit was seen "
                                "(it replaced that edit; JIRA and the entry agree)")
            entry.keep_due()
        if row.version == o.planned.version and not isinstance(step, Find):
            entry.count_attempt()
        follow = next_step(entry.push_state(route(row.ticket, row.requested_instance_id, routes)))
        if isinstance(follow, Done) and row.due_at is not None:
            _finish(entry, follow)

    async def _record_failure(self, uow: UnitOfWork, entry: EntrySync, o: _Outcome, exc: JiraError, *,
                              permanent: bool) -> None:
        step = o.planned.step
        if isinstance(step, Create) and not (isinstance(exc, TransientError) and exc.maybe_applied):
            entry.create_refused()  # JIRA certainly did not create it
        if entry.entry.version != o.planned.version:
            return  # a newer change landed while we were talking to JIRA: it gets fresh attempts at once
        attempts, row = entry.count_attempt(), entry.entry
        instance_id = str(step.instance_id)
        if permanent or attempts >= self.d.settings.sync_max_attempts:
            message = exc.message if permanent else (
                f"JIRA did not accept the change after {attempts} attempts: {exc.message}")
            entry.fail(message)
            metrics.SYNC_OUTCOMES.labels(instance_id, SyncStatus.FAILED.value).inc()
            await _notify_once(uow.session, tenant_id=row.tenant_id, user=row.user, kind=NotificationKind.SYNC_FAILED,
                               message=f"entry {row.id} ({row.ticket}) could not be synced: {message}",
                               entry_id=row.id, instance_id=step.instance_id, per_entry=True)
        else:
            delay = backoff_seconds(attempts, self.d.settings.sync_backoff_base_seconds, self.d.rng(),
                                    self.d.settings.sync_backoff_max_seconds)
            # still pending; say why, so a person watching sees the retry coming
            entry.retry_later(delay, f"attempt {attempts} failed, retrying in {delay:.1f} s: {exc.message}")
            metrics.SYNC_OUTCOMES.labels(instance_id, "retry").inc()


async def settle_unrouted(deps: PushDeps, *, per_tenant: int = 100) -> int:
    """Due entries whose next push has no instance (theirs was deleted): route them again (another instance may
    take their project now; its pusher is woken) or finish them as not routed. At most `per_tenant` of each tenant
    per call, so one tenant's thousands never hold another's up. Returns how many were settled."""
    now = now_utc()
    async with UnitOfWork.open(deps.sessionmaker, deps.wake) as uow:
        rows = await repo.take_unrouted_due(uow.session, now=now, per_tenant=per_tenant)
        routes: dict[uuid.UUID, list[InstanceRoute]] = {}
        for row in rows:
            if row.tenant_id not in routes:
                routes[row.tenant_id] = await repo.instance_routes(uow.session, row.tenant_id)
            entry = uow.entry(row, now=now)
            step = next_step(entry.push_state(route(row.ticket, row.requested_instance_id, routes[row.tenant_id])))
            if isinstance(step, Done):
                _finish(entry, step)
            # otherwise it is routed now, and the aggregate announced it to that instance's pusher
        await uow.commit()
    return len(rows)
