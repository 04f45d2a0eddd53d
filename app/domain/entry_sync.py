"""The entry aggregate: the one owner of an entry's sync state and of every transition of it. Pure: no I/O.

An entry's sync fields (status, outbox marker, attempts, the worklog it holds, what we last wrote) are
changed here and nowhere else; services load an entry, call a transition and leave the rest to their unit
of work. Each transition records what the caller's unit of work must do after it: a changes-feed record
when the status (or content) changed, a push due now (for the pusher of its instance to hear of). A test
enforces that no other module assigns these fields (`tests/unit/test_sync_state_ownership.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Protocol

from app.domain.entry import Route, SyncIntent, SyncStatus, worklog_wanted
from app.domain.priority import Priority
from app.domain.snapshot import WorklogSnapshot
from app.domain.sync import PushState
from app.domain.worklog import build_worklog

# The fields only this module assigns (the test named above reads this tuple).
SYNC_FIELDS = (
    "sync_status", "last_error", "sync_updated_at", "instance_id", "worklog_id", "worklog_instance_id",
    "worklog_ticket", "attempts", "synced_at", "synced_version", "due_at", "priority", "create_unconfirmed",
    "base", "remote_updated_ms", "claimed_by", "claimed_until",
)


class SyncedEntry(Protocol):
    """An entry as stored (the database row satisfies it): TimeTracker's data plus its sync state."""

    tenant_id: uuid.UUID
    id: str
    user: str
    ticket: str
    date: date
    start: time
    duration: int
    timezone: str
    description: str | None
    activity: str | None
    requested_instance_id: uuid.UUID | None
    updated_at: datetime
    is_deleted: bool
    version: int
    # the sync state: assigned only by EntrySync
    sync_status: str
    last_error: str | None
    sync_updated_at: datetime
    instance_id: uuid.UUID | None
    worklog_id: str | None
    worklog_instance_id: uuid.UUID | None
    worklog_ticket: str | None
    attempts: int
    synced_at: datetime | None
    synced_version: int
    due_at: datetime | None
    priority: int
    create_unconfirmed: bool
    base: dict[str, Any] | None
    remote_updated_ms: int | None
    claimed_by: str | None  # the pusher that took the entry and has not recorded its answer yet
    claimed_until: datetime | None  # ... until when at most (a killed pusher's claim lapses)


class FeedKind(StrEnum):
    """Why a changes-feed record was written (CONTRACT 8, `GET /api/v1/changes`)."""

    SYNC_STATUS = "sync_status"  # the sync status or its reason changed
    LOCAL_CHANGE = "local_change"  # TimeTracker changed the entry's content and the status stayed
    REMOTE_ADOPTION = "remote_adoption"  # JIRA's values were adopted into the entry


@dataclass(frozen=True)
class FeedRecord:
    """The changes feed must record this entry (as it is at commit) under this kind."""

    entry: SyncedEntry
    kind: FeedKind


@dataclass(frozen=True)
class PushDue:
    """The entry is due now and its next push goes to `instance_id` (None: no instance yet): wake that instance's
    pusher after commit (the outbox marker is already set)."""

    tenant_id: uuid.UUID
    entry_id: str
    priority: Priority
    instance_id: uuid.UUID | None = None


Event = FeedRecord | PushDue


class EntrySync:
    """Transitions of one entry's sync state at one instant; `record` receives what they imply."""

    def __init__(self, entry: SyncedEntry, *, now: datetime, record: Callable[[Event], None]) -> None:
        self.entry = entry
        self.now = now
        self._record = record

    # -- what the entry holds -------------------------------------------------------------------------------

    @property
    def status(self) -> SyncStatus:
        return SyncStatus(self.entry.sync_status)

    @property
    def base(self) -> WorklogSnapshot | None:
        """What we last wrote to JIRA (None: nothing confirmed, or JIRA holds someone else's edit)."""
        return WorklogSnapshot.from_json(self.entry.base)

    @property
    def push_instance(self) -> uuid.UUID | None:
        """The instance the entry's next push goes to: where its worklog is (or may be, after a create of unknown
        outcome), else where it is routed. The per-instance pushers select their due entries by this (the index
        `ix_entries_push_due` is on the same expression)."""
        return self.entry.worklog_instance_id or self.entry.instance_id

    @property
    def unpushed_change(self) -> bool:
        """A TimeTracker change is waiting to be pushed (or is being pushed)."""
        return self.entry.due_at is not None or self.entry.synced_version != self.entry.version

    def wanted(self) -> WorklogSnapshot | None:
        """The worklog the entry wants where its worklog lives now; None when it wants none there (deleted,
        duration 0, not routed, or moving to another issue or instance: the old worklog is going away)."""
        e = self.entry
        if not worklog_wanted(deleted=e.is_deleted, duration=e.duration, instance_id=e.instance_id).wanted:
            return None
        if e.worklog_instance_id is not None and (e.instance_id != e.worklog_instance_id
                                                  or e.ticket != e.worklog_ticket):
            return None
        return WorklogSnapshot.of_body(self._body())

    def push_state(self, route: Route) -> PushState:
        """What the push decision needs, with the entry routed as `route` says (and remembered so)."""
        e = self.entry
        if e.instance_id != route.instance_id and not e.is_deleted:
            before = self.push_instance
            e.instance_id = route.instance_id
            self._announce_if_moved(before)
        want = worklog_wanted(deleted=e.is_deleted, duration=e.duration, instance_id=route.instance_id,
                              route_reason=route.reason)
        return PushState(
            ticket=e.ticket, routed_instance=route.instance_id, want=want, worklog_id=e.worklog_id,
            worklog_instance=e.worklog_instance_id, worklog_ticket=e.worklog_ticket,
            create_unconfirmed=e.create_unconfirmed, body=self._body() if want.wanted else None, base=self.base,
        )

    def _body(self) -> Any:
        e = self.entry
        return build_worklog(entry_id=e.id, day=e.date, start=e.start, zone=e.timezone, duration_minutes=e.duration,
                             activity=e.activity, description=e.description)

    # -- status and outbox ----------------------------------------------------------------------------------

    def _status(self, status: SyncStatus, reason: str | None = None, *, kind: FeedKind = FeedKind.SYNC_STATUS,
                content_changed: bool = False) -> None:
        """The one place the status changes; every change lands in the changes feed.

        A TimeTracker content change that keeps the status is fed too (`local_change`), and so is every
        adoption of JIRA's values, so a client reading the feed from the start can rebuild every entry.
        """
        e = self.entry
        changed = e.sync_status != status or e.last_error != reason
        e.sync_status, e.last_error, e.sync_updated_at = status, reason, self.now
        if changed or kind is not FeedKind.SYNC_STATUS:
            self._record(FeedRecord(e, kind))
        elif content_changed:
            self._record(FeedRecord(e, FeedKind.LOCAL_CHANGE))

    def _due_now(self, priority: Priority) -> None:
        e = self.entry
        e.due_at, e.priority, e.attempts = self.now, int(priority), 0
        self._record(PushDue(e.tenant_id, e.id, priority, self.push_instance))

    def _announce_if_moved(self, before: uuid.UUID | None) -> None:
        """A due entry whose next push now goes to another instance: that instance's pusher must hear of it."""
        e = self.entry
        if e.due_at is not None and self.push_instance != before:
            self._record(PushDue(e.tenant_id, e.id, Priority(e.priority), self.push_instance))

    def mark_due(self, *, priority: Priority = Priority.USER, reason: str | None = None,
                 kind: FeedKind = FeedKind.SYNC_STATUS) -> None:
        """Pending and due now with fresh attempts (a change JIRA must get)."""
        self._due_now(priority)
        self._status(SyncStatus.PENDING, reason, kind=kind)

    def apply_intent(self, intent: SyncIntent, route: Route, *, priority: Priority,
                     content_changed: bool = False) -> bool:
        """A TimeTracker change (or a retry) was accepted: route it and set the status it leaves; True if due."""
        e = self.entry
        if not e.is_deleted:
            e.instance_id = route.instance_id
        if intent.push:
            self._due_now(priority)
        else:
            e.due_at, e.priority, e.attempts = None, int(priority), 0
        self._status(intent.status, intent.reason, content_changed=content_changed)
        return intent.push

    def finish(self, status: SyncStatus, reason: str | None = None, *,
               kind: FeedKind = FeedKind.SYNC_STATUS) -> None:
        """JIRA holds what this version of the entry wants (or nothing is to be written): no longer due."""
        e = self.entry
        e.due_at, e.synced_version = None, e.version
        if status is SyncStatus.SYNCED:
            e.synced_at = self.now
        self._status(status, reason, kind=kind)

    def mark_synced(self, *, kind: FeedKind = FeedKind.SYNC_STATUS) -> None:
        """JIRA holds exactly this version of the entry."""
        self.finish(SyncStatus.SYNCED, kind=kind)

    def retry_later(self, delay_seconds: float, reason: str) -> None:
        """A transient failure: still pending, due again after the backoff."""
        self.entry.due_at = self.now + timedelta(seconds=delay_seconds)
        self._status(SyncStatus.PENDING, reason)

    def fail(self, reason: str) -> None:
        """JIRA refused, or the attempts ran out: a person must look (`POST …/retry`)."""
        self.entry.due_at = None
        self._status(SyncStatus.FAILED, reason)

    def require_auth(self, reason: str) -> None:
        """The user's JIRA connection is missing or rejected: wait until they connect again."""
        self.entry.due_at = None
        self._status(SyncStatus.AUTH_REQUIRED, reason)

    def count_attempt(self) -> int:
        """One more JIRA request was spent on this version; returns the attempts so far."""
        self.entry.attempts += 1
        return self.entry.attempts

    def keep_due(self) -> None:
        """Stay due now (if not due already), without a new attempt budget: the running push goes on."""
        self.entry.due_at = self.entry.due_at or self.now

    # -- being pushed ---------------------------------------------------------------------------------------

    def claim(self, pusher: str, until: datetime) -> None:
        """A pusher took the entry: no other takes it until the answer is recorded, or `until` (it died)."""
        self.entry.claimed_by, self.entry.claimed_until = pusher, until

    def release(self, pusher: str) -> bool:
        """The pusher's answer is being recorded: the entry may be taken again. False when it is not (or no longer)
        that pusher's: another took it after the claim lapsed, and a late answer must not undo its plan."""
        if self.entry.claimed_by != pusher:
            return False
        self.entry.claimed_by = self.entry.claimed_until = None
        return True

    # -- the worklog in JIRA --------------------------------------------------------------------------------

    def mark_create_unconfirmed(self, instance_id: uuid.UUID, issue: str) -> None:
        """A create is about to go out: until its answer is recorded, a worklog may exist without our knowing."""
        e = self.entry
        e.create_unconfirmed, e.worklog_instance_id, e.worklog_ticket = True, instance_id, issue

    def create_refused(self) -> None:
        """JIRA certainly did not create the worklog (it answered, and not with success; or the request never
        left): no worklog may exist, so none is looked for and the next push goes where the entry is routed."""
        e = self.entry
        before = self.push_instance
        e.create_unconfirmed = False
        if e.worklog_id is None:
            e.worklog_instance_id = e.worklog_ticket = None
        self._announce_if_moved(before)

    def record_written(self, *, worklog_id: str, instance_id: uuid.UUID, issue: str,
                       written: WorklogSnapshot | None, remote_updated_ms: int | None) -> None:
        """JIRA holds our worklog `worklog_id` with `written` (a create, an update, or a found anchor; None when
        what it holds cannot be read: the next step writes over it)."""
        e = self.entry
        e.worklog_id, e.worklog_instance_id, e.worklog_ticket = worklog_id, instance_id, issue
        e.create_unconfirmed = False
        e.base = None if written is None else written.as_json()
        e.remote_updated_ms = remote_updated_ms

    def record_not_found(self) -> None:
        """A create's outcome was unknown and JIRA holds no worklog of ours: the next step creates one."""
        e = self.entry
        before = self.push_instance
        e.create_unconfirmed = False
        e.worklog_instance_id = e.worklog_ticket = None
        self._announce_if_moved(before)

    def forget_worklog(self) -> None:
        """The worklog is gone from JIRA (deleted by us or by someone): the next push creates a new one."""
        e = self.entry
        before = self.push_instance
        e.worklog_id = e.worklog_instance_id = e.worklog_ticket = None
        e.base = None
        e.remote_updated_ms = None
        e.create_unconfirmed = False
        self._announce_if_moved(before)

    def overwrite_remote(self) -> None:
        """JIRA holds someone else's edit: the next push writes the entry's state over it (even if that state
        equals what we wrote before)."""
        self.entry.base = None

    def saw_remote(self, updated_ms: int | None) -> None:
        """The newest `updated` of our worklog that JIRA showed us (older or equal observations are stale)."""
        self.entry.remote_updated_ms = updated_ms

    def adopt_remote(self, base: WorklogSnapshot | None, updated_ms: int | None) -> None:
        """JIRA's worklog became the entry's state: it is what JIRA holds (None: unconfirmed, write it back)."""
        self.entry.base = None if base is None else base.as_json()
        self.entry.remote_updated_ms = updated_ms

    # -- conflicts ------------------------------------------------------------------------------------------

    def open_conflict(self, reason: str) -> None:
        """JIRA's edit stays for now and a person decides: no pushes until then."""
        self.entry.due_at = None
        self._status(SyncStatus.CONFLICT, reason)
