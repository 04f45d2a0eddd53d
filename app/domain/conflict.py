"""The conflict policy (CONTRACT section 8): what a change made in JIRA means for an entry. Pure: no I/O.

JIRA tells us about worklogs through webhooks and the reconciliation poll, late, twice, out of order and
also for our own writes. The policy first filters what is no real remote change (stale, duplicate, echo,
already what TimeTracker wants), then applies the contract's rule: a local change within the window
wins and is pushed again; otherwise JIRA's state stays and a person decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from app.domain.snapshot import WorklogSnapshot


class Verdict(StrEnum):
    IGNORE = "ignore"  # not a remote change of ours: stale, duplicate, echo, nothing written yet
    TIMETRACKER_WINS = "timetracker_wins"  # push the entry's state again
    JIRA_WINS = "jira_wins"  # keep JIRA's state; the entry becomes `conflict` until a person decides


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


def decide(
    *,
    base: WorklogSnapshot | None,
    remote: WorklogSnapshot | None,
    remote_updated_ms: int | None,
    last_seen_updated_ms: int | None,
    wanted: WorklogSnapshot | None,
    local_changed_at: datetime,
    now: datetime,
    window: timedelta,
    unpushed_local_change: bool,
) -> Decision:
    """Classify one observation of our worklog in JIRA.

    `base` is what we last wrote (None: nothing confirmed, a push will write anyway); `remote` is JIRA's
    state, None when the worklog was deleted; `remote_updated_ms` JIRA's `updated` of it (or the deletion
    time) and `last_seen_updated_ms` the newest one we already know; `wanted` the worklog the entry wants
    now (None: the entry wants no worklog: deleted, duration 0 or moved away).
    """
    if base is None:
        return Decision(Verdict.IGNORE, "nothing confirmed written yet: the pending push decides what JIRA holds")
    if (remote_updated_ms is not None and last_seen_updated_ms is not None
            and remote_updated_ms <= last_seen_updated_ms):
        return Decision(Verdict.IGNORE, "stale or duplicate: a newer or equal state of this worklog was already seen")
    if remote is None and wanted is None:
        return Decision(Verdict.IGNORE, "deleted in JIRA, and TimeTracker wants no worklog either")
    if remote is not None and remote == base:
        return Decision(Verdict.IGNORE, "echo: JIRA holds what the service last wrote")
    if remote is not None and remote == wanted:
        # a write of ours whose answer is not recorded yet, or someone made JIRA match TimeTracker
        return Decision(Verdict.IGNORE, "JIRA already holds the entry's current state")
    what = "deleted" if remote is None else "changed"
    if wanted is None:
        # the entry was deleted (or emptied) in TimeTracker: the pending push removes the worklog
        return Decision(Verdict.TIMETRACKER_WINS, f"worklog {what} in JIRA, but the entry was removed in TimeTracker")
    if now - local_changed_at <= window:
        pending = " (its change is not pushed yet)" if unpushed_local_change else ""
        return Decision(
            Verdict.TIMETRACKER_WINS,
            f"worklog {what} in JIRA, but the entry changed in TimeTracker within the last "
            f"{int(window.total_seconds())} s{pending}: TimeTracker's state is pushed again",
        )
    both = " while TimeTracker's own change was not pushed yet" if unpushed_local_change else ""
    return Decision(Verdict.JIRA_WINS, f"worklog {what} in JIRA{both}: a person must decide which to keep")


class ConflictStatus(StrEnum):
    OPEN = "open"  # waits for a person's decision
    RESOLVED = "resolved"


class Winner(StrEnum):
    TIMETRACKER = "timetracker"
    JIRA = "jira"


class ConflictRecord(Protocol):
    """A stored conflict (the database row satisfies it)."""

    status: str
    winner: str | None
    resolved_at: datetime | None


def close_conflict(conflict: ConflictRecord, *, winner: Winner | None, now: datetime) -> None:
    """Close an open conflict: decided for `winner`, or dissolved by itself (None: JIRA went back)."""
    conflict.status, conflict.resolved_at = ConflictStatus.RESOLVED, now
    if winner is not None:
        conflict.winner = winner
