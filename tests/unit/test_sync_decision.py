"""The push decision as a table of cases (pure: no database, no HTTP)."""

from __future__ import annotations

import uuid
from datetime import date, time

import pytest

from app.domain.entry import (
    ChangeOutcome,
    EntryContent,
    InstanceRoute,
    Route,
    SyncStatus,
    classify_change,
    intent_after_change,
    route,
    worklog_wanted,
)
from app.domain.snapshot import WorklogSnapshot
from app.domain.sync import Done, PushState, StepKind, Update, backoff_seconds, next_step
from app.domain.worklog import build_worklog

A, B = uuid.uuid4(), uuid.uuid4()
BODY = build_worklog(entry_id="1", day=date(2026, 11, 25), start=time(9), zone="Europe/Berlin",
                     duration_minutes=90, activity="Dev", description="x")
OTHER = build_worklog(entry_id="1", day=date(2026, 11, 25), start=time(10), zone="Europe/Berlin",
                      duration_minutes=90, activity="Dev", description="x")


def snapshot(body):
    return WorklogSnapshot.of_body(body)


def state(**kw):
    base = dict(deleted=False, duration=90, ticket="PROJ-1", routed_instance=A, route_reason=None,
                worklog_id=None, worklog_instance=None, worklog_ticket=None, create_unconfirmed=False, body=BODY,
                base=None)
    base.update(kw)
    want = worklog_wanted(deleted=base.pop("deleted"), duration=base.pop("duration"),
                          instance_id=base["routed_instance"], route_reason=base.pop("route_reason"))
    return PushState(want=want, **base)


@pytest.mark.parametrize(
    ("case", "kw", "kind", "final"),
    [
        ("new entry is created", {}, StepKind.CREATE, None),
        ("unchanged synced entry needs nothing", dict(worklog_id="9", worklog_instance=A, worklog_ticket="PROJ-1",
                                                      base=snapshot(BODY)), StepKind.DONE, SyncStatus.SYNCED),
        ("changed entry is updated", dict(worklog_id="9", worklog_instance=A, worklog_ticket="PROJ-1",
                                          base=snapshot(OTHER)), StepKind.UPDATE, None),
        ("deleted entry's worklog is deleted", dict(deleted=True, body=None, worklog_id="9", worklog_instance=A,
                                                    worklog_ticket="PROJ-1"), StepKind.DELETE, None),
        ("deleted entry without worklog is done", dict(deleted=True, body=None), StepKind.DONE, SyncStatus.DELETED),
        ("duration 0 removes the worklog", dict(duration=0, body=None, worklog_id="9", worklog_instance=A,
                                                worklog_ticket="PROJ-1"), StepKind.DELETE, None),
        ("duration 0 without worklog is skipped", dict(duration=0, body=None), StepKind.DONE, SyncStatus.SKIPPED),
        ("ticket moved: delete the old worklog first", dict(ticket="PROJ-2", worklog_id="9", worklog_instance=A,
                                                            worklog_ticket="PROJ-1"), StepKind.DELETE, None),
        ("instance moved: delete on the old instance", dict(routed_instance=B, worklog_id="9", worklog_instance=A,
                                                            worklog_ticket="PROJ-1"), StepKind.DELETE, None),
        ("unknown create outcome: find the anchor", dict(create_unconfirmed=True, worklog_instance=A,
                                                         worklog_ticket="PROJ-1"), StepKind.FIND, None),
        ("no route is skipped with the reason", dict(routed_instance=None, body=None, route_reason="no instance"),
         StepKind.DONE, SyncStatus.SKIPPED),
    ],
)
def test_next_step(case, kw, kind, final):
    step = next_step(state(**kw))
    assert step.kind is kind, case
    assert (step.status if isinstance(step, Done) else None) == final, case


def test_update_targets_the_stored_worklog():
    step = next_step(state(worklog_id="9", worklog_instance=A, worklog_ticket="PROJ-1", base=snapshot(OTHER)))
    assert isinstance(step, Update)
    assert (step.instance_id, step.issue, step.worklog_id, step.body) == (A, "PROJ-1", "9", BODY)


def test_backoff_doubles_from_the_base_with_bounded_jitter():
    assert [backoff_seconds(n, 1.0, 0.0) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert backoff_seconds(2, 1.0, 0.999) < 2.5
    assert backoff_seconds(30, 1.0, 0.0, cap=300) == 300
    assert backoff_seconds(10_000, 1.0, 0.0) == 300  # no overflow for absurd attempt counts


def test_routing():
    routes = [InstanceRoute(A, "main", ["PROJ", "OPS"]), InstanceRoute(B, "other", ["OPS", "X"])]
    assert route("PROJ-1", None, routes) == Route(A)
    assert route("X-1", None, routes) == Route(B)
    assert route("X-1", A, routes) == Route(A)
    assert route("NONE-1", None, routes).instance_id is None
    both = route("OPS-1", None, routes)
    assert both.instance_id is None and "several" in (both.reason or "")


C = EntryContent("u", "P-1", date(2026, 1, 1), time(9), 60, "UTC", None, None, None)
C2 = EntryContent("u", "P-1", date(2026, 1, 1), time(9), 61, "UTC", None, None, None)


@pytest.mark.parametrize(
    ("stored_at", "stored", "stored_deleted", "incoming_at", "incoming", "incoming_deleted", "expected"),
    [
        (None, None, False, 5, C, False, ChangeOutcome.CREATED),
        (5, C, False, 4, C, False, ChangeOutcome.STALE),
        (5, C, False, 5, C, False, ChangeOutcome.UNCHANGED),
        (5, C, False, 6, C, False, ChangeOutcome.UNCHANGED),
        (5, C, False, 5, C2, False, ChangeOutcome.UPDATED),
        # deletions are ordered like every other change
        (5, C, False, 6, None, True, ChangeOutcome.UPDATED),  # a newer deletion
        (5, C, False, 5, None, True, ChangeOutcome.UPDATED),  # an equal stamp is applied
        (5, C, False, 4, None, True, ChangeOutcome.STALE),  # an older deletion changes nothing
        (5, C, True, 6, None, True, ChangeOutcome.UNCHANGED),  # deleted twice
        (5, C, True, 4, None, True, ChangeOutcome.STALE),
        (5, C, True, 6, C, False, ChangeOutcome.UPDATED),  # a newer change brings a deleted entry back...
        (5, C, True, 5, C, False, ChangeOutcome.UPDATED),  # ...with the same content too
        (5, C, True, 4, C2, False, ChangeOutcome.STALE),  # an older one does not
    ],
)
def test_classify_change(stored_at, stored, stored_deleted, incoming_at, incoming, incoming_deleted, expected):
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def at(n):
        return None if n is None else t0 + timedelta(seconds=n)

    assert classify_change(stored_updated_at=at(stored_at), stored=stored, stored_deleted=stored_deleted,
                           incoming_updated_at=at(incoming_at), incoming=incoming,
                           incoming_deleted=incoming_deleted) is expected


def test_intent_after_change():
    r = Route(A)
    assert intent_after_change(deleted=False, duration=60, route=r, has_worklog=False).status is SyncStatus.PENDING
    assert intent_after_change(deleted=True, duration=60, route=r, has_worklog=False).status is SyncStatus.DELETED
    assert intent_after_change(deleted=True, duration=60, route=r, has_worklog=True).push
    skipped = intent_after_change(deleted=False, duration=0, route=r, has_worklog=False)
    assert skipped.status is SyncStatus.SKIPPED and "0" in (skipped.reason or "")
