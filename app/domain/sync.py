"""The push decision: given an entry's state, the next JIRA call to make (or the final status).

Pure. The worker runs one step, records what JIRA answered, and asks again until the plan is final,
so the happy path of any change is exactly one JIRA request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from app.domain.entry import SyncStatus, Want
from app.domain.snapshot import WorklogSnapshot
from app.domain.worklog import WorklogBody


class StepKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    FIND = "find"  # a create's outcome is unknown: look for our #<id>: anchor before creating again
    DONE = "done"


@dataclass(frozen=True)
class PushState:
    """What the push needs to know about an entry (built by `EntrySync.push_state`)."""

    ticket: str
    routed_instance: uuid.UUID | None
    want: Want  # whether the entry wants a worklog; if not, the final status and why
    worklog_id: str | None
    worklog_instance: uuid.UUID | None
    worklog_ticket: str | None
    create_unconfirmed: bool
    body: WorklogBody | None  # the worklog it wants; None exactly when `want` says it wants none
    base: WorklogSnapshot | None  # what we last wrote


@dataclass(frozen=True)
class IssueStep:
    """One JIRA request about a worklog on `issue` of instance `instance_id` (written under the issue's lock)."""

    instance_id: uuid.UUID
    issue: str


@dataclass(frozen=True)
class Create(IssueStep):
    """Write a new worklog with `body`."""

    body: WorklogBody
    kind: ClassVar[StepKind] = StepKind.CREATE


@dataclass(frozen=True)
class Update(IssueStep):
    """Write `body` over our worklog `worklog_id`."""

    worklog_id: str
    body: WorklogBody
    kind: ClassVar[StepKind] = StepKind.UPDATE


@dataclass(frozen=True)
class Delete(IssueStep):
    """Remove our worklog `worklog_id` (the entry wants none there any more)."""

    worklog_id: str
    kind: ClassVar[StepKind] = StepKind.DELETE


@dataclass(frozen=True)
class Find(IssueStep):
    """Look for the entry's `#<id>:` anchor among the issue's worklogs (a create's outcome is unknown)."""

    kind: ClassVar[StepKind] = StepKind.FIND


@dataclass(frozen=True)
class Done:
    """Nothing (more) to write: the entry's final status for this version, and why."""

    status: SyncStatus
    reason: str | None = None
    kind: ClassVar[StepKind] = StepKind.DONE


JiraStep = Create | Update | Delete | Find  # one JIRA request each
Step = JiraStep | Done


def next_step(s: PushState) -> Step:
    """The one next thing to do for this entry."""
    if s.create_unconfirmed and s.worklog_id is None and s.worklog_instance and s.worklog_ticket:
        return Find(s.worklog_instance, s.worklog_ticket)
    if s.worklog_id is not None and s.worklog_instance is not None and s.worklog_ticket is not None:
        moved = s.worklog_instance != s.routed_instance or s.worklog_ticket != s.ticket
        if s.body is None or moved:
            return Delete(s.worklog_instance, s.worklog_ticket, s.worklog_id)
        if WorklogSnapshot.of_body(s.body) == s.base:
            return Done(SyncStatus.SYNCED)
        return Update(s.worklog_instance, s.worklog_ticket, s.worklog_id, s.body)
    if s.body is None or s.routed_instance is None:
        return Done(s.want.status, s.want.reason)
    return Create(s.routed_instance, s.ticket, s.body)


def backoff_seconds(attempt: int, base: float, jitter: float, cap: float = 300.0) -> float:
    """Backoff before attempt n+1: base * 2^(n-1) (1, 2, 4, 8 s) up to `cap`, plus `jitter` in [0, 1) of 25%."""
    delay = min(cap, base * (2 ** min(max(0, attempt - 1), 30)))
    return delay + delay * 0.25 * jitter
