"""The entry aggregate's transitions as tables (pure: a plain object stands in for the row)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest

from app.domain.entry import Route, SyncIntent, SyncStatus
from app.domain.entry_sync import EntrySync, Event, FeedKind, FeedRecord, PushDue
from app.domain.priority import Priority
from app.domain.snapshot import WorklogSnapshot

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)
TENANT, A, B = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
WRITTEN = WorklogSnapshot(1_764_057_600_000, 1800, "#1: no activity specified: x")


@dataclass
class Row:
    tenant_id: uuid.UUID = TENANT
    id: str = "1"
    user: str = "jdoe"
    ticket: str = "PROJ-1"
    date: date = date(2026, 11, 25)
    start: time = time(9)
    duration: int = 30
    timezone: str = "UTC"
    description: str | None = "x"
    activity: str | None = None
    requested_instance_id: uuid.UUID | None = None
    updated_at: datetime = EARLIER
    is_deleted: bool = False
    version: int = 3
    sync_status: str = SyncStatus.PENDING
    last_error: str | None = None
    sync_updated_at: datetime = EARLIER
    instance_id: uuid.UUID | None = A
    worklog_id: str | None = None
    worklog_instance_id: uuid.UUID | None = None
    worklog_ticket: str | None = None
    attempts: int = 2
    synced_at: datetime | None = None
    synced_version: int = 1
    due_at: datetime | None = EARLIER
    priority: int = 1
    create_unconfirmed: bool = False
    base: dict[str, Any] | None = None
    remote_updated_ms: int | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = None
    events: list[Event] = field(default_factory=list, compare=False, repr=False)


SYNCED = dict(sync_status=SyncStatus.SYNCED, due_at=None, worklog_id="9", worklog_instance_id=A,
              worklog_ticket="PROJ-1", base=WRITTEN.as_json(), synced_version=3, remote_updated_ms=5)


def run(start: dict[str, Any], transition: Any) -> tuple[Row, Row]:
    row = Row(**start)
    before = replace(row)
    transition(EntrySync(row, now=NOW, record=row.events.append))
    return before, row


def changed(before: Row, after: Row) -> dict[str, Any]:
    return {k: v for k, v in vars(after).items() if k != "events" and vars(before)[k] != v}


FEED = FeedRecord  # short names for the tables


@pytest.mark.parametrize(
    ("case", "start", "transition", "fields", "events"),
    [
        ("mark_due: pending, due now, fresh attempts, pushed after commit",
         SYNCED, lambda s: s.mark_due(priority=Priority.USER, reason="why"),
         dict(sync_status=SyncStatus.PENDING, last_error="why", due_at=NOW, priority=0, attempts=0,
              sync_updated_at=NOW),
         ["push:0@A", "feed:sync_status"]),
        ("mark_due as an adoption is fed as one",
         SYNCED, lambda s: s.mark_due(kind=FeedKind.REMOTE_ADOPTION),
         dict(sync_status=SyncStatus.PENDING, due_at=NOW, priority=0, attempts=0, sync_updated_at=NOW),
         ["push:0@A", "feed:remote_adoption"]),
        ("mark_synced: no longer due, this version synced",
         dict(sync_status=SyncStatus.CONFLICT, due_at=None), lambda s: s.mark_synced(),
         dict(sync_status=SyncStatus.SYNCED, synced_version=3, synced_at=NOW, sync_updated_at=NOW),
         ["feed:sync_status"]),
        ("finish skipped keeps synced_at and says why",
         {}, lambda s: s.finish(SyncStatus.SKIPPED, "duration is 0"),
         dict(sync_status=SyncStatus.SKIPPED, last_error="duration is 0", due_at=None, synced_version=3,
              sync_updated_at=NOW),
         ["feed:sync_status"]),
        ("finish deleted as an adoption",
         dict(sync_status=SyncStatus.CONFLICT, due_at=None), lambda s: s.finish(SyncStatus.DELETED,
                                                                             kind=FeedKind.REMOTE_ADOPTION),
         dict(sync_status=SyncStatus.DELETED, synced_version=3, sync_updated_at=NOW),
         ["feed:remote_adoption"]),
        ("same status and reason again: no feed record",
         dict(sync_status=SyncStatus.SYNCED, due_at=None, synced_version=3), lambda s: s.mark_synced(),
         dict(synced_at=NOW, sync_updated_at=NOW), []),
        ("retry_later: pending with the reason, due after the backoff",
         {}, lambda s: s.retry_later(4.0, "attempt 2 failed"),
         dict(last_error="attempt 2 failed", due_at=NOW + timedelta(seconds=4), sync_updated_at=NOW),
         ["feed:sync_status"]),
        ("fail: not due, failed with JIRA's message",
         {}, lambda s: s.fail("no such issue"),
         dict(sync_status=SyncStatus.FAILED, last_error="no such issue", due_at=None, sync_updated_at=NOW),
         ["feed:sync_status"]),
        ("require_auth: waits for the user to connect",
         {}, lambda s: s.require_auth("reconnect"),
         dict(sync_status=SyncStatus.AUTH_REQUIRED, last_error="reconnect", due_at=None, sync_updated_at=NOW),
         ["feed:sync_status"]),
        ("open_conflict: no pushes until a person decides",
         SYNCED, lambda s: s.open_conflict("changed in JIRA"),
         dict(sync_status=SyncStatus.CONFLICT, last_error="changed in JIRA", sync_updated_at=NOW),
         ["feed:sync_status"]),
        ("count_attempt",
         {}, lambda s: s.count_attempt(), dict(attempts=3), []),
        ("keep_due leaves an earlier marker",
         {}, lambda s: s.keep_due(), {}, []),
        ("keep_due sets a missing marker",
         dict(due_at=None), lambda s: s.keep_due(), dict(due_at=NOW), []),
        ("mark_create_unconfirmed remembers where",
         {}, lambda s: s.mark_create_unconfirmed(A, "PROJ-1"),
         dict(create_unconfirmed=True, worklog_instance_id=A, worklog_ticket="PROJ-1"), []),
        ("create_refused: nothing can exist there, the next push goes where the entry is routed",
         dict(create_unconfirmed=True, worklog_instance_id=A, worklog_ticket="PROJ-1"), lambda s: s.create_refused(),
         dict(create_unconfirmed=False, worklog_instance_id=None, worklog_ticket=None), []),
        ("create_refused after a re-route: the new instance's pusher hears of it",
         dict(create_unconfirmed=True, worklog_instance_id=A, worklog_ticket="PROJ-1", instance_id=B),
         lambda s: s.create_refused(),
         dict(create_unconfirmed=False, worklog_instance_id=None, worklog_ticket=None), ["push:1@B"]),
        ("record_written: the worklog, what it holds, when JIRA last changed it",
         dict(create_unconfirmed=True), lambda s: s.record_written(worklog_id="9", instance_id=A, issue="PROJ-1",
                                                                   written=WRITTEN, remote_updated_ms=7),
         dict(create_unconfirmed=False, worklog_id="9", worklog_instance_id=A, worklog_ticket="PROJ-1",
              base=WRITTEN.as_json(), remote_updated_ms=7), []),
        ("record_not_found: the next step creates",
         dict(create_unconfirmed=True, worklog_instance_id=A, worklog_ticket="PROJ-1"),
         lambda s: s.record_not_found(),
         dict(create_unconfirmed=False, worklog_instance_id=None, worklog_ticket=None), []),
        ("forget_worklog",
         SYNCED, lambda s: s.forget_worklog(),
         dict(worklog_id=None, worklog_instance_id=None, worklog_ticket=None, base=None, remote_updated_ms=None),
         []),
        ("forget_worklog of a due entry moving to another instance: that instance's pusher hears of it",
         dict(SYNCED, due_at=NOW, instance_id=B, priority=1), lambda s: s.forget_worklog(),
         dict(worklog_id=None, worklog_instance_id=None, worklog_ticket=None, base=None, remote_updated_ms=None),
         ["push:1@B"]),
        ("claim: taken by a pusher until its answer is recorded, or it lapses",
         {}, lambda s: s.claim("pusher-1", NOW + timedelta(seconds=30)),
         dict(claimed_by="pusher-1", claimed_until=NOW + timedelta(seconds=30)), []),
        ("release by the claiming pusher",
         dict(claimed_by="pusher-1", claimed_until=NOW), lambda s: s.release("pusher-1"),
         dict(claimed_by=None, claimed_until=None), []),
        ("release by a pusher whose claim lapsed and was taken over changes nothing",
         dict(claimed_by="pusher-2", claimed_until=NOW), lambda s: s.release("pusher-1"), {}, []),
        ("overwrite_remote drops the base only",
         SYNCED, lambda s: s.overwrite_remote(), dict(base=None), []),
        ("saw_remote", SYNCED, lambda s: s.saw_remote(11), dict(remote_updated_ms=11), []),
        ("adopt_remote with a confirmed base",
         {}, lambda s: s.adopt_remote(WRITTEN, 12), dict(base=WRITTEN.as_json(), remote_updated_ms=12), []),
        ("adopt_remote unconfirmed",
         SYNCED, lambda s: s.adopt_remote(None, 12), dict(base=None, remote_updated_ms=12), []),
        ("apply_intent with a push: routed, due now",
         dict(instance_id=None, due_at=None, sync_status=SyncStatus.SKIPPED, last_error="no instance"),
         lambda s: s.apply_intent(SyncIntent(SyncStatus.PENDING, True), Route(B), priority=Priority.BATCH),
         dict(instance_id=B, due_at=NOW, attempts=0, sync_status=SyncStatus.PENDING, last_error=None,
              sync_updated_at=NOW),
         ["push:1@B", "feed:sync_status"]),
        ("apply_intent without a push: not due, says why",
         {}, lambda s: s.apply_intent(SyncIntent(SyncStatus.SKIPPED, False, "no instance"), Route(None, "no"),
                                      priority=Priority.USER),
         dict(instance_id=None, due_at=None, attempts=0, priority=0, sync_status=SyncStatus.SKIPPED,
              last_error="no instance", sync_updated_at=NOW),
         ["feed:sync_status"]),
        ("apply_intent on a deleted entry keeps its instance",
         dict(is_deleted=True, worklog_id="9", worklog_instance_id=A, worklog_ticket="PROJ-1"),
         lambda s: s.apply_intent(SyncIntent(SyncStatus.PENDING, True), Route(None), priority=Priority.USER),
         dict(due_at=NOW, attempts=0, priority=0, sync_updated_at=NOW),
         ["push:0@A"]),
        ("a content change that keeps the status is fed as local_change",
         {}, lambda s: s.apply_intent(SyncIntent(SyncStatus.PENDING, True), Route(A), priority=Priority.BATCH,
                                      content_changed=True),
         dict(due_at=NOW, attempts=0, sync_updated_at=NOW),
         ["push:1@A", "feed:local_change"]),
    ],
)
def test_transition(case, start, transition, fields, events):
    before, after = run(start, transition)
    assert changed(before, after) == fields, case
    names = {A: "A", B: "B", None: "none"}
    described = [f"feed:{e.kind.value}" if isinstance(e, FeedRecord)
                 else f"push:{int(e.priority)}@{names[e.instance_id]}" for e in after.events]
    assert described == events, case
    for e in after.events:
        assert (e.entry is after) if isinstance(e, FeedRecord) else (e.tenant_id, e.entry_id) == (TENANT, "1")


@pytest.mark.parametrize(
    ("case", "start", "wanted"),
    [
        ("synced entry wants what it is", dict(SYNCED), True),
        ("deleted entry wants nothing", dict(SYNCED, is_deleted=True), False),
        ("duration 0 wants nothing", dict(SYNCED, duration=0), False),
        ("unrouted wants nothing", dict(instance_id=None), False),
        ("moving to another issue: the old worklog goes", dict(SYNCED, ticket="PROJ-2"), False),
        ("moving to another instance: the old worklog goes", dict(SYNCED, instance_id=B), False),
    ],
)
def test_wanted(case, start, wanted):
    sync = EntrySync(Row(**start), now=NOW, record=lambda e: None)
    assert (sync.wanted() is not None) is wanted, case


def test_unpushed_change():
    def unpushed(**kw: Any) -> bool:
        return EntrySync(Row(**kw), now=NOW, record=lambda e: None).unpushed_change
    assert unpushed(due_at=NOW, synced_version=3)
    assert unpushed(due_at=None, synced_version=2)
    assert not unpushed(due_at=None, synced_version=3)


def test_push_state_routes_the_entry():
    row = Row(instance_id=None)
    state = EntrySync(row, now=NOW, record=lambda e: None).push_state(Route(B))
    assert row.instance_id == B and state.routed_instance == B and state.body is not None
    deleted = Row(is_deleted=True, instance_id=A)
    EntrySync(deleted, now=NOW, record=lambda e: None).push_state(Route(B))
    assert deleted.instance_id == A  # a deleted entry's worklog is removed where it is


@pytest.mark.parametrize(
    ("case", "start", "push_instance"),
    [
        ("routed, nothing written: where it is routed", {}, A),
        ("a worklog in JIRA: where the worklog is, even when routed elsewhere now",
         dict(SYNCED, instance_id=B), A),
        ("a create of unknown outcome: where the worklog may be", dict(create_unconfirmed=True,
                                                                     worklog_instance_id=B, worklog_ticket="X-1"), B),
        ("not routed, nothing written: nowhere", dict(instance_id=None), None),
    ],
)
def test_push_instance(case, start, push_instance):
    assert EntrySync(Row(**start), now=NOW, record=lambda e: None).push_instance == push_instance, case


def test_push_state_rerouting_a_due_entry_tells_the_new_instances_pusher():
    row = Row(instance_id=A, due_at=EARLIER, priority=0)
    EntrySync(row, now=NOW, record=row.events.append).push_state(Route(B))
    assert row.instance_id == B
    assert row.events == [PushDue(TENANT, "1", Priority.USER, B)]
    quiet = Row(instance_id=A, due_at=None)
    EntrySync(quiet, now=NOW, record=quiet.events.append).push_state(Route(B))
    assert quiet.instance_id == B and quiet.events == []  # not due: nothing to push there
