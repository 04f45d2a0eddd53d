"""Use cases of the JIRA → service direction: a remote change observed, and a conflict resolved.

A webhook and the reconciliation poll both end in `observe_remote`, which asks the pure conflict policy
(`app.domain.conflict.decide`) and applies its verdict through the entry aggregate in the caller's unit of
work; its commit wakes the pusher when TimeTracker wins (PostgreSQL holds the outbox marker either way).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from app.clock import now_utc
from app.db.models import ConflictRow, EntryRow, JiraInstanceRow
from app.db.repositories import activity as activity_repo
from app.db.repositories import entries as repo
from app.domain.conflict import ConflictStatus, Verdict, Winner, close_conflict, decide
from app.domain.entry import NotificationKind, SyncStatus
from app.domain.entry_sync import EntrySync, FeedKind
from app.domain.snapshot import WorklogSnapshot
from app.domain.worklog import adopt_remote, jira_time_ms_or_none, parse_comment, parse_started
from app.jira.resources import RemoteWorklog
from app.services.unit_of_work import UnitOfWork
from app.services.views import entry_view


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


class ConflictNotFound(LookupError):
    pass


class ConflictAlreadyResolved(Exception):
    pass


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


def _snapshot_of(worklog: RemoteWorklog) -> WorklogSnapshot | None:
    try:
        return WorklogSnapshot.of_remote(worklog.started, worklog.time_spent_seconds, worklog.comment)
    except ValueError:
        return None


async def observe_remote(
    uow: UnitOfWork, instance: JiraInstanceRow, obs: RemoteObservation, *, window: timedelta,
    now: datetime | None = None,
) -> Observed:
    """Apply what JIRA said about one worklog to the entry that owns it (if any), per the conflict policy."""
    session = uow.session
    row = await activity_repo.entry_by_worklog(session, instance.tenant_id, instance.id, obs.worklog_id, lock=True)
    if row is None:
        return Observed(Verdict.IGNORE, "not ours: no entry of this tenant holds this worklog")
    entry = uow.entry(row, now=now)
    remote = _snapshot_of(obs.worklog) if obs.worklog is not None else None
    if obs.worklog is not None and remote is None:
        return Observed(Verdict.IGNORE, "unreadable worklog (no valid started)", row.id)
    wanted, base = entry.wanted(), entry.base
    decision = decide(
        base=base, remote=remote, remote_updated_ms=obs.updated_ms, last_seen_updated_ms=row.remote_updated_ms,
        wanted=wanted, local_changed_at=row.local_changed_at, now=entry.now, window=window,
        unpushed_local_change=entry.unpushed_change,
    )
    if decision.verdict is Verdict.IGNORE:
        newer = obs.updated_ms is not None and (row.remote_updated_ms is None or obs.updated_ms > row.remote_updated_ms)
        if newer and remote is not None and base is not None:
            entry.saw_remote(obs.updated_ms)
            if entry.status is SyncStatus.CONFLICT:
                # JIRA went back to what we wrote (or to what TimeTracker wants): nothing left to decide
                await _dissolve(uow, entry, wanted=wanted)
        return Observed(decision.verdict, decision.reason, row.id)

    what = "deleted" if obs.worklog is None else "changed"
    repo.add_audit(
        session, tenant_id=row.tenant_id, action=f"remote.worklog_{what}", entry_id=row.id,
        jira_instance_id=instance.id, outcome=decision.verdict.value,
        detail=f"worklog {obs.worklog_id} {what} in JIRA (seen by {obs.source}): {decision.reason}",
    )
    if decision.verdict is Verdict.TIMETRACKER_WINS:
        if obs.worklog is None:
            entry.forget_worklog()
        else:
            entry.overwrite_remote()  # what JIRA holds is no longer what we wrote: the push must overwrite it
            entry.saw_remote(obs.updated_ms)
        entry.mark_due(reason=f"the worklog was {what} in JIRA; TimeTracker's newer state is written again")
        return Observed(decision.verdict, decision.reason, row.id)

    # JIRA wins for now: keep its state, stop pushing, and ask a person
    local = entry_view(row)
    remote_json = remote_view(obs.worklog, row) if obs.worklog is not None else None
    if obs.worklog is None:
        entry.forget_worklog()
        message = (f"The JIRA worklog of entry {row.id} ({row.ticket}, {_describe_local(row)}) was deleted in "
                   f"JIRA. Keep TimeTracker's entry (it is written to JIRA again) or JIRA's deletion "
                   f"(the entry is deleted) by resolving the conflict.")
    else:
        entry.saw_remote(obs.updated_ms)
        message = (f"The JIRA worklog of entry {row.id} ({row.ticket}) was changed in JIRA: JIRA now has "
                   f"{_describe_remote(obs.worklog, row.timezone)}, TimeTracker has {_describe_local(row)}. "
                   f"Resolve the conflict to keep one of them.")
    entry.open_conflict(message)
    existing = await activity_repo.open_conflict_of(session, row.tenant_id, row.id, lock=True)
    if existing is not None:
        # a further change in JIRA while a person has not decided yet: the record shows the latest
        existing.local, existing.remote = local, remote_json
    else:
        session.add(ConflictRow(
            id=uuid.uuid4(), tenant_id=row.tenant_id, entry_id=row.id, jira_instance_id=instance.id, local=local,
            remote=remote_json, detected_at=entry.now, status=ConflictStatus.OPEN,
        ))
        repo.add_notification(session, tenant_id=row.tenant_id, user=row.user, kind=NotificationKind.CONFLICT,
                              message=message, entry_id=row.id, jira_instance_id=instance.id)
    return Observed(decision.verdict, decision.reason, row.id)


async def _dissolve(uow: UnitOfWork, entry: EntrySync, *, wanted: WorklogSnapshot | None) -> None:
    row = entry.entry
    conflict = await activity_repo.open_conflict_of(uow.session, row.tenant_id, row.id, lock=True)
    if conflict is not None:
        close_conflict(conflict, winner=None, now=entry.now)
    repo.add_audit(uow.session, tenant_id=row.tenant_id, action="conflict.dissolved", entry_id=row.id,
                   jira_instance_id=row.worklog_instance_id, outcome="ok",
                   detail="JIRA's worklog went back to what the service wrote; the conflict needs no decision")
    if wanted is not None and wanted == entry.base:
        entry.mark_synced()
    else:
        entry.mark_due()


async def resolve_conflict(
    uow: UnitOfWork, tenant_id: uuid.UUID, conflict_id: uuid.UUID, winner: Winner, *, now: datetime | None = None,
    user: str | None = None,
) -> tuple[ConflictRow, EntryRow | None]:
    """Decide an open conflict (with `user`: only one about an entry of theirs, else `ConflictNotFound`).
    Returns the conflict and its entry; its pusher is woken when a push is due."""
    session = uow.session
    now = now or now_utc()
    conflict = await activity_repo.get_conflict(session, tenant_id, conflict_id, lock=True, user=user)
    if conflict is None:
        raise ConflictNotFound(str(conflict_id))
    if conflict.status != ConflictStatus.OPEN:
        raise ConflictAlreadyResolved(f"conflict {conflict_id} was already resolved ({conflict.winner or 'by JIRA'})")
    close_conflict(conflict, winner=winner, now=now)
    row = await repo.get_entry(session, tenant_id, conflict.entry_id, lock=True)
    if row is not None:
        entry = uow.entry(row, now=now)
        if winner is Winner.TIMETRACKER:
            _keep_timetracker(entry, conflict)
        else:
            _adopt_jira(uow, entry, conflict)
    repo.add_audit(
        session, tenant_id=tenant_id, action="conflict.resolve", entry_id=conflict.entry_id,
        jira_instance_id=conflict.jira_instance_id, outcome=winner,
        detail=f"conflict {conflict.id} resolved: {'TimeTracker' if winner is Winner.TIMETRACKER else 'JIRA'} wins",
    )
    return conflict, row


def _keep_timetracker(entry: EntrySync, conflict: ConflictRow) -> None:
    if conflict.remote is None or entry.entry.worklog_id is None:
        entry.forget_worklog()  # deleted in JIRA: create it again
    else:
        entry.overwrite_remote()  # JIRA's state differs from what we wrote: overwrite it
    entry.mark_due()


def _adopt_jira(uow: UnitOfWork, entry: EntrySync, conflict: ConflictRow) -> None:
    row, remote, now = entry.entry, conflict.remote, entry.now
    superseded = entry.status is not SyncStatus.CONFLICT  # TimeTracker changed the entry after the conflict
    row.version += 1
    row.updated_at = max(row.updated_at, now)  # a replay of an older TimeTracker change must not undo this
    repo.add_audit(uow.session, tenant_id=row.tenant_id, action="entry.remote_adoption", entry_id=row.id,
                   jira_instance_id=conflict.jira_instance_id, outcome="ok",
                   detail="JIRA's deletion adopted: entry deleted" if remote is None
                   else f"JIRA's worklog {remote.get('worklog_id')} adopted into the entry")
    if remote is None:
        # JIRA's state is "no worklog": the entry is deleted, as a TimeTracker deletion would have done
        row.is_deleted = True
        entry.forget_worklog()
        entry.finish(SyncStatus.DELETED, kind=FeedKind.REMOTE_ADOPTION)
        return
    fields = adopt_remote(str(remote["started"]), int(remote["time_spent_seconds"]), row.timezone)
    parsed = parse_comment(str(remote.get("comment") or ""))
    row.date, row.start, row.duration = fields.day, fields.start, fields.duration_minutes
    row.description = parsed.description
    if parsed.entry_id == row.id:
        row.activity = parsed.activity  # the anchored comment carries the activity too
    row.is_deleted = False
    base = WorklogSnapshot.of_remote(str(remote["started"]), int(remote["time_spent_seconds"]),
                                     str(remote.get("comment") or ""))
    entry.adopt_remote(None if superseded else base, jira_time_ms_or_none(remote.get("updated")))
    if entry.base is not None and entry.wanted() == entry.base:
        entry.mark_synced(kind=FeedKind.REMOTE_ADOPTION)
        return
    # JIRA's comment lost the anchor, or its values do not map onto whole minutes: write the adopted state
    # back so JIRA and the entry are equal again (and the worklog stays findable by its anchor)
    entry.mark_due(kind=FeedKind.REMOTE_ADOPTION)
