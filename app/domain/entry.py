"""Entries and what an accepted change means for their sync state. Pure: no I/O."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum


class SyncStatus(StrEnum):
    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"
    AUTH_REQUIRED = "auth_required"
    CONFLICT = "conflict"
    SKIPPED = "skipped"
    DELETED = "deleted"


TICKET_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,30}-[1-9][0-9]{0,11}$")


def normalise_ticket(raw: str) -> str:
    """`proj-123 ` → `PROJ-123`; raises ValueError unless it looks like a JIRA issue key."""
    ticket = raw.strip().upper()
    if not TICKET_RE.match(ticket):
        raise ValueError("must look like a JIRA issue key, e.g. PROJ-123")
    return ticket


def project_of(ticket: str) -> str:
    return ticket.rsplit("-", 1)[0]


@dataclass(frozen=True)
class EntryContent:
    """The parts of an entry that end up in JIRA or decide where it goes."""

    user: str
    ticket: str
    day: date
    start: time
    duration: int
    timezone: str
    description: str | None
    activity: str | None
    requested_instance: uuid.UUID | None


@dataclass(frozen=True)
class InstanceRoute:
    id: uuid.UUID
    name: str
    project_keys: Sequence[str]


@dataclass(frozen=True)
class Route:
    instance_id: uuid.UUID | None
    reason: str | None = None


def route(ticket: str, requested: uuid.UUID | None, instances: Sequence[InstanceRoute]) -> Route:
    """CONTRACT 3: the named instance, else the one whose project_keys hold the ticket's prefix."""
    if requested is not None:
        if any(i.id == requested for i in instances):
            return Route(requested)
        return Route(None, "the JIRA instance named in jira_instance no longer exists")
    project = project_of(ticket)
    matches = [i for i in instances if project in {k.upper() for k in i.project_keys}]
    if len(matches) == 1:
        return Route(matches[0].id)
    if not matches:
        return Route(None, f"no JIRA instance of this tenant handles project {project}")
    names = ", ".join(sorted(i.name for i in matches))
    return Route(None, f"several JIRA instances handle project {project} ({names}); name one in jira_instance")


class ChangeOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    STALE = "stale"


def classify_change(
    *, stored_updated_at: datetime | None, stored: EntryContent | None, stored_deleted: bool,
    incoming_updated_at: datetime, incoming: EntryContent | None, incoming_deleted: bool,
) -> ChangeOutcome:
    """Stale when older than what we hold; unchanged when identical (an equal stamp is applied)."""
    if stored_updated_at is None:
        return ChangeOutcome.CREATED
    if incoming_updated_at < stored_updated_at:
        return ChangeOutcome.STALE
    if incoming_deleted == stored_deleted and (incoming_deleted or incoming == stored):
        return ChangeOutcome.UNCHANGED
    return ChangeOutcome.UPDATED


@dataclass(frozen=True)
class Want:
    """Whether an entry wants a worklog in JIRA; if not, the status that says so and why."""

    wanted: bool
    status: SyncStatus = SyncStatus.PENDING
    reason: str | None = None


def worklog_wanted(*, deleted: bool, duration: int, instance_id: uuid.UUID | None,
                   route_reason: str | None = None) -> Want:
    """The one answer to "does this entry want a worklog": not deleted, not empty, routed to an instance."""
    if deleted:
        return Want(False, SyncStatus.DELETED)
    if duration <= 0:
        return Want(False, SyncStatus.SKIPPED, "duration is 0: nothing to push to JIRA")
    if instance_id is None:
        return Want(False, SyncStatus.SKIPPED, route_reason or "no JIRA instance")
    return Want(True)


@dataclass(frozen=True)
class SyncIntent:
    """The status an accepted change leaves the entry in, and whether a push is due."""

    status: SyncStatus
    push: bool
    reason: str | None = None


def intent_after_change(*, deleted: bool, duration: int, route: Route, has_worklog: bool) -> SyncIntent:
    """Decide the state right after TimeTracker changed an entry (the push decides the JIRA calls)."""
    if has_worklog:
        # whatever happened, JIRA holds something for this entry that must be updated or removed
        return SyncIntent(SyncStatus.PENDING, True)
    want = worklog_wanted(deleted=deleted, duration=duration, instance_id=route.instance_id, route_reason=route.reason)
    return SyncIntent(want.status, want.wanted, want.reason)


class NotificationKind(StrEnum):
    """What a notification tells a person (CONTRACT 8)."""

    AUTH_REQUIRED = "auth_required"  # connect (again) to JIRA
    CONFLICT = "conflict"  # JIRA and TimeTracker disagree: decide
    SYNC_FAILED = "sync_failed"  # JIRA refused an entry
