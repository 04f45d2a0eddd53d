"""The push decision: given an entry's state, the next JIRA call to make (or the final status).

Pure. The worker runs one step, records what JIRA answered, and asks again until the plan is final,
so the happy path of any change is exactly one JIRA request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.domain.entry import SyncStatus
from app.domain.worklog import WorklogBody, parse_started


class StepKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    FIND = "find"  # a create's outcome is unknown: look for our #<id>: anchor before creating again
    DONE = "done"


@dataclass(frozen=True)
class PushState:
    """What the push needs to know about an entry, read from its row."""

    entry_id: str
    deleted: bool
    duration: int
    ticket: str
    routed_instance: uuid.UUID | None
    route_reason: str | None
    worklog_id: str | None
    worklog_instance: uuid.UUID | None
    worklog_ticket: str | None
    create_unconfirmed: bool
    body: WorklogBody | None  # None when there is nothing to write (deleted, duration 0, no route)
    base: dict[str, Any] | None  # what we last wrote


@dataclass(frozen=True)
class Step:
    kind: StepKind
    instance_id: uuid.UUID | None = None
    issue: str | None = None
    worklog_id: str | None = None
    body: WorklogBody | None = None
    final_status: SyncStatus | None = None
    reason: str | None = None


def snapshot(body: WorklogBody) -> dict[str, Any]:
    """The base snapshot kept for the conflict policy: what we wrote, instant-normalised."""
    return {
        "started_ms": int(parse_started(body.started).timestamp() * 1000),
        "time_spent_seconds": body.time_spent_seconds,
        "comment": body.comment,
    }


SNAPSHOT_KEYS = ("started_ms", "time_spent_seconds", "comment")


def same_as_base(body: WorklogBody, base: dict[str, Any] | None) -> bool:
    """True when JIRA already holds exactly this body (as we last wrote it)."""
    return base is not None and snapshot(body) == {k: base.get(k) for k in SNAPSHOT_KEYS}


def next_step(s: PushState) -> Step:
    """The one next thing to do for this entry."""
    wants_worklog = s.body is not None and s.routed_instance is not None
    if s.create_unconfirmed and s.worklog_id is None and s.worklog_instance and s.worklog_ticket:
        return Step(StepKind.FIND, s.worklog_instance, s.worklog_ticket)
    if s.worklog_id is not None and s.worklog_instance is not None and s.worklog_ticket is not None:
        moved = s.worklog_instance != s.routed_instance or s.worklog_ticket != s.ticket
        if not wants_worklog or moved:
            return Step(StepKind.DELETE, s.worklog_instance, s.worklog_ticket, s.worklog_id)
        assert s.body is not None
        if same_as_base(s.body, s.base):
            return Step(StepKind.DONE, final_status=SyncStatus.SYNCED)
        return Step(StepKind.UPDATE, s.worklog_instance, s.worklog_ticket, s.worklog_id, s.body)
    if s.deleted:
        return Step(StepKind.DONE, final_status=SyncStatus.DELETED)
    if s.duration == 0:
        return Step(StepKind.DONE, final_status=SyncStatus.SKIPPED, reason="duration is 0: nothing to push to JIRA")
    if not wants_worklog:
        return Step(StepKind.DONE, final_status=SyncStatus.SKIPPED, reason=s.route_reason or "no JIRA instance")
    return Step(StepKind.CREATE, s.routed_instance, s.ticket, body=s.body)


def backoff_seconds(attempt: int, base: float, jitter: float, cap: float = 300.0) -> float:
    """Backoff before attempt n+1: base * 2^(n-1) (1, 2, 4, 8 s) up to `cap`, plus `jitter` in [0, 1) of 25%."""
    delay = min(cap, base * (2 ** min(max(0, attempt - 1), 30)))
    return delay + delay * 0.25 * jitter
