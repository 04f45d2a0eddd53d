"""Use cases of the JIRA → service direction: a remote change observed, and a conflict resolved.

A webhook and the reconciliation poll both end in `observe_remote`, which asks the pure conflict policy
(`app.domain.conflict.decide`) and applies its verdict to the entry in the caller's transaction. The caller
commits and then enqueues the pushes it is handed back (PostgreSQL holds the outbox marker either way).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import ConflictRow, EntryRow, JiraInstanceRow
from app.db.repositories import activity as activity_repo
from app.db.repositories import entries as repo
from app.domain.conflict import RemoteState, Verdict, decide, remote_state
from app.domain.entry import SyncStatus
from app.domain.sync import snapshot
from app.domain.worklog import adopt_remote, build_worklog, parse_comment, parse_started
from app.jira.priority import Priority
from app.jira.resources import RemoteWorklog
from app.services.entries import flush_feed, set_status
from app.services.views import entry_view

Winner = Literal["timetracker", "jira"]


@dataclass(frozen=True)
class RemoteObservation:
    """What JIRA told us about one worklog: its state now, or that it was deleted (`worklog` None)."""

    worklog_id: str
    worklog: RemoteWorklog | None
    updated_ms: int | None  # JIRA's `updated` of the worklog, or when it was deleted
    source: Literal["webhook", "poll"]


@dataclass(frozen=True)
class Observed:
    verdict: Verdict
    reason: str
    entry_id: str | None = None
    push: bool = False  # the caller must enqueue the entry after committing


class ConflictNotFound(LookupError):
    pass


class ConflictAlreadyResolved(Exception):
    pass


def now_utc() -> datetime:
    return datetime.now(UTC)


def ms_of(value: str | None) -> int | None:
    """JIRA's timestamp rendering as epoch milliseconds (None when missing or unreadable)."""
    if not value:
        return None
    try:
        return int(parse_started(value).timestamp() * 1000)
    except ValueError:
        return None


def wanted_snapshot(row: EntryRow) -> dict[str, Any] | None:
    """The snapshot of the worklog the entry wants now where its worklog lives; None when it wants none there."""
    if row.is_deleted or row.duration <= 0 or row.instance_id is None:
        return None
    if row.worklog_instance_id is not None and (
        row.instance_id != row.worklog_instance_id or row.ticket != row.worklog_ticket
    ):
        return None  # moving to another issue or instance: the old worklog is going away
    return snapshot(build_worklog(
        entry_id=row.id, day=row.date, start=row.start, zone=row.timezone, duration_minutes=row.duration,
        activity=row.activity, description=row.description,
    ))


def _minutes_text(seconds: int) -> str:
    minutes = (seconds + 30) // 60
    hours, rest = divmod(minutes, 60)
    if hours and rest:
        return f"{hours}h {rest}m"
    return f"{hours}h" if hours else f"{rest}m"


def _describe_local(row: EntryRow) -> str:
    return (f"{row.date.isoformat()} {row.start.strftime('%H:%M')} ({row.timezone}), "
            f"{_minutes_text(row.duration * 60)}")


def _describe_remote(worklog: RemoteWorklog, zone: str) -> str:
    try:
        moment = parse_started(worklog.started).astimezone(ZoneInfo(zone))
        when = moment.strftime("%Y-%m-%d %H:%M")
    except ValueError:
        when = worklog.started
    comment = parse_comment(worklog.comment).description or "no description"
    return f"{when} ({zone}), {_minutes_text(worklog.time_spent_seconds)}, “{comment}”"


def remote_view(worklog: RemoteWorklog, row: EntryRow) -> dict[str, Any]:
    """JIRA's worklog as the conflict record shows it: JIRA's fields plus what they mean as an entry."""
    view: dict[str, Any] = {
        "worklog_id": worklog.id,
        "issue_id": worklog.issue_id,
        "ticket": row.worklog_ticket,
        "started": worklog.started,
        "time_spent_seconds": worklog.time_spent_seconds,
        "comment": worklog.comment,
        "updated": worklog.updated or None,
        "author": worklog.author,
    }
    try:
        fields = adopt_remote(worklog.started, worklog.time_spent_seconds, row.timezone)
        view.update(date=fields.day.isoformat(), start=fields.start.strftime("%H:%M"),
                    duration=fields.duration_minutes, description=parse_comment(worklog.comment).description)
    except ValueError:
        pass
    return view


def _state_of(worklog: RemoteWorklog) -> RemoteState | None:
    try:
        return remote_state(worklog.started, worklog.time_spent_seconds, worklog.comment)
    except ValueError:
        return None


def _mark_due(session: AsyncSession, row: EntryRow, now: datetime, note: str | None) -> None:
    row.due_at = now
    row.priority = int(Priority.USER)
    row.attempts = 0
    set_status(session, row, SyncStatus.PENDING, last_error=note, now=now)


def _forget_worklog(row: EntryRow) -> None:
    """The worklog is gone from JIRA: the next push creates a new one."""
    row.worklog_id = row.worklog_instance_id = row.worklog_ticket = None
    row.base = None
    row.remote_updated_ms = None
    row.create_unconfirmed = False


async def observe_remote(
    session: AsyncSession, instance: JiraInstanceRow, obs: RemoteObservation, *, window: timedelta,
    now: datetime | None = None,
) -> Observed:
    """Apply what JIRA said about one worklog to the entry that owns it (if any), per the conflict policy."""
    now = now or now_utc()
    row = await activity_repo.entry_by_worklog(session, instance.tenant_id, instance.id, obs.worklog_id, lock=True)
    if row is None:
        return Observed(Verdict.IGNORE, "not ours: no entry of this tenant holds this worklog")
    remote = _state_of(obs.worklog) if obs.worklog is not None else None
    if obs.worklog is not None and remote is None:
        return Observed(Verdict.IGNORE, "unreadable worklog (no valid started)", row.id)
    wanted = wanted_snapshot(row)
    unpushed = row.due_at is not None or row.synced_version != row.version
    decision = decide(
        base=row.base, remote=remote, remote_updated_ms=obs.updated_ms, last_seen_updated_ms=row.remote_updated_ms,
        wanted=wanted, local_changed_at=row.local_changed_at, now=now, window=window, unpushed_local_change=unpushed,
    )
    if decision.verdict is Verdict.IGNORE:
        newer = obs.updated_ms is not None and (row.remote_updated_ms is None or obs.updated_ms > row.remote_updated_ms)
        if newer and remote is not None and row.base is not None:
            row.remote_updated_ms = obs.updated_ms
            if row.sync_status == SyncStatus.CONFLICT:
                # JIRA went back to what we wrote (or to what TimeTracker wants): nothing left to decide
                await _dissolve(session, row, now, wanted=wanted)
                await flush_feed(session)
        return Observed(decision.verdict, decision.reason, row.id)

    what = "deleted" if obs.worklog is None else "changed"
    repo.add_audit(
        session, tenant_id=row.tenant_id, action=f"remote.worklog_{what}", entry_id=row.id,
        jira_instance_id=instance.id, outcome=decision.verdict.value,
        detail=f"worklog {obs.worklog_id} {what} in JIRA (seen by {obs.source}): {decision.reason}",
    )
    if decision.verdict is Verdict.TIMETRACKER_WINS:
        if obs.worklog is None:
            _forget_worklog(row)
        else:
            row.base = None  # what JIRA holds is no longer what we wrote: the push must overwrite it
            row.remote_updated_ms = obs.updated_ms
        _mark_due(session, row, now, f"the worklog was {what} in JIRA; TimeTracker's newer state is written again")
        await flush_feed(session)
        return Observed(decision.verdict, decision.reason, row.id, push=True)

    # JIRA wins for now: keep its state, stop pushing, and ask a person
    local = entry_view(row)
    remote_json = remote_view(obs.worklog, row) if obs.worklog is not None else None
    if obs.worklog is None:
        _forget_worklog(row)
        message = (f"The JIRA worklog of entry {row.id} ({row.ticket}, {_describe_local(row)}) was deleted in "
                   f"JIRA. Keep TimeTracker's entry (it is written to JIRA again) or JIRA's deletion "
                   f"(the entry is deleted) by resolving the conflict.")
    else:
        row.remote_updated_ms = obs.updated_ms
        message = (f"The JIRA worklog of entry {row.id} ({row.ticket}) was changed in JIRA: JIRA now has "
                   f"{_describe_remote(obs.worklog, row.timezone)}, TimeTracker has {_describe_local(row)}. "
                   f"Resolve the conflict to keep one of them.")
    row.due_at = None
    set_status(session, row, SyncStatus.CONFLICT, last_error=message, now=now)
    existing = await activity_repo.open_conflict_of(session, row.tenant_id, row.id, lock=True)
    if existing is not None:
        # a further change in JIRA while a person has not decided yet: the record shows the latest
        existing.local, existing.remote = local, remote_json
    else:
        session.add(ConflictRow(
            id=uuid.uuid4(), tenant_id=row.tenant_id, entry_id=row.id, jira_instance_id=instance.id, local=local,
            remote=remote_json, detected_at=now, status="open",
        ))
        repo.add_notification(session, tenant_id=row.tenant_id, user=row.user, kind="conflict", message=message,
                              entry_id=row.id, jira_instance_id=instance.id)
    await flush_feed(session)
    return Observed(decision.verdict, decision.reason, row.id)


async def _dissolve(session: AsyncSession, row: EntryRow, now: datetime, *, wanted: dict[str, Any] | None) -> None:
    conflict = await activity_repo.open_conflict_of(session, row.tenant_id, row.id, lock=True)
    if conflict is not None:
        conflict.status, conflict.resolved_at = "resolved", now
    repo.add_audit(session, tenant_id=row.tenant_id, action="conflict.dissolved", entry_id=row.id,
                   jira_instance_id=row.worklog_instance_id, outcome="ok",
                   detail="JIRA's worklog went back to what the service wrote; the conflict needs no decision")
    if wanted is not None and wanted == row.base:
        row.synced_version = row.version
        row.synced_at = now
        set_status(session, row, SyncStatus.SYNCED, now=now)
    else:
        _mark_due(session, row, now, None)


async def resolve_conflict(
    session: AsyncSession, tenant_id: uuid.UUID, conflict_id: uuid.UUID, winner: Winner, *,
    now: datetime | None = None,
) -> tuple[ConflictRow, EntryRow | None, bool]:
    """Decide an open conflict. Returns the conflict, its entry and whether a push must be enqueued."""
    now = now or now_utc()
    conflict = await activity_repo.get_conflict(session, tenant_id, conflict_id, lock=True)
    if conflict is None:
        raise ConflictNotFound(str(conflict_id))
    if conflict.status != "open":
        raise ConflictAlreadyResolved(f"conflict {conflict_id} was already resolved ({conflict.winner or 'by JIRA'})")
    conflict.status, conflict.winner, conflict.resolved_at = "resolved", winner, now
    row = await repo.get_entry(session, tenant_id, conflict.entry_id, lock=True)
    push = False
    if row is not None:
        push = _keep_timetracker(session, row, conflict, now) if winner == "timetracker" \
            else _adopt_jira(session, row, conflict, now)
    repo.add_audit(
        session, tenant_id=tenant_id, action="conflict.resolve", entry_id=conflict.entry_id,
        jira_instance_id=conflict.jira_instance_id, outcome=winner,
        detail=f"conflict {conflict.id} resolved: {'TimeTracker' if winner == 'timetracker' else 'JIRA'} wins",
    )
    await flush_feed(session)
    return conflict, row, push


def _keep_timetracker(session: AsyncSession, row: EntryRow, conflict: ConflictRow, now: datetime) -> bool:
    if conflict.remote is None or row.worklog_id is None:
        _forget_worklog(row)  # deleted in JIRA: create it again
    else:
        row.base = None  # JIRA's state differs from what we wrote: overwrite it
    _mark_due(session, row, now, None)
    return True


def _adopt_jira(session: AsyncSession, row: EntryRow, conflict: ConflictRow, now: datetime) -> bool:
    remote = conflict.remote
    superseded = row.sync_status != SyncStatus.CONFLICT  # TimeTracker changed the entry after the conflict
    row.version += 1
    row.updated_at = max(row.updated_at, now)  # a replay of an older TimeTracker change must not undo this
    repo.add_audit(session, tenant_id=row.tenant_id, action="entry.remote_adoption", entry_id=row.id,
                   jira_instance_id=conflict.jira_instance_id, outcome="ok",
                   detail="JIRA's deletion adopted: entry deleted" if remote is None
                   else f"JIRA's worklog {remote.get('worklog_id')} adopted into the entry")
    if remote is None:
        # JIRA's state is "no worklog": the entry is deleted, as a TimeTracker deletion would have done
        row.is_deleted = True
        _forget_worklog(row)
        row.due_at = None
        row.synced_version = row.version
        set_status(session, row, SyncStatus.DELETED, now=now, kind="remote_adoption")
        return False
    fields = adopt_remote(str(remote["started"]), int(remote["time_spent_seconds"]), row.timezone)
    parsed = parse_comment(str(remote.get("comment") or ""))
    row.date, row.start, row.duration = fields.day, fields.start, fields.duration_minutes
    row.description = parsed.description
    if parsed.entry_id == row.id:
        row.activity = parsed.activity  # the anchored comment carries the activity too
    row.is_deleted = False
    base = remote_state(str(remote["started"]), int(remote["time_spent_seconds"]), str(remote.get("comment") or ""))
    row.base = None if superseded else base.as_snapshot()
    row.remote_updated_ms = ms_of(remote.get("updated"))
    if row.base is not None and wanted_snapshot(row) == row.base:
        row.due_at = None
        row.synced_version = row.version
        row.synced_at = now
        set_status(session, row, SyncStatus.SYNCED, now=now, kind="remote_adoption")
        return False
    # JIRA's comment lost the anchor, or its values do not map onto whole minutes: write the adopted state
    # back so JIRA and the entry are equal again (and the worklog stays findable by its anchor)
    row.due_at = now
    row.priority = int(Priority.USER)
    row.attempts = 0
    set_status(session, row, SyncStatus.PENDING, now=now, kind="remote_adoption")
    return True
