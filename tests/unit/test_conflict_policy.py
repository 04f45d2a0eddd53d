"""The conflict policy (CONTRACT section 8) as a table: what a remote observation means for an entry."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.conflict import Verdict, decide
from app.domain.snapshot import WorklogSnapshot

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=300)
BASE = WorklogSnapshot(1_764_057_600_000, 5400, "#4711: Development: Fix login")
SAME = WorklogSnapshot(BASE.started_ms, 5400, BASE.comment)
EDITED = WorklogSnapshot(BASE.started_ms, 7200, BASE.comment)
WANTED_NEW = replace(BASE, time_spent_seconds=3600)
RECENT = NOW - timedelta(seconds=60)
OLD = NOW - timedelta(hours=2)

# (name, base, remote, remote_updated_ms, last_seen_ms, wanted, local_changed_at, unpushed, verdict)
CASES = [
    ("echo of our own write", BASE, SAME, 2_000, 1_000, BASE, OLD, False, Verdict.IGNORE),
    ("duplicate delivery", BASE, EDITED, 2_000, 2_000, BASE, OLD, False, Verdict.IGNORE),
    ("out of order (older than seen)", BASE, EDITED, 1_500, 2_000, BASE, OLD, False, Verdict.IGNORE),
    ("nothing confirmed written yet", None, EDITED, 2_000, None, BASE, OLD, True, Verdict.IGNORE),
    ("JIRA already holds the pending change", BASE, WorklogSnapshot(BASE.started_ms, 3600, BASE.comment),
     2_000, 1_000, WANTED_NEW, RECENT, True, Verdict.IGNORE),
    ("deleted there, deleted here", BASE, None, 2_000, 1_000, None, RECENT, True, Verdict.IGNORE),
    ("remote edit, old local change", BASE, EDITED, 2_000, 1_000, BASE, OLD, False, Verdict.JIRA_WINS),
    ("remote edit, recent local change", BASE, EDITED, 2_000, 1_000, BASE, RECENT, False,
     Verdict.TIMETRACKER_WINS),
    ("remote edit, recent unpushed local change", BASE, EDITED, 2_000, 1_000, WANTED_NEW, RECENT, True,
     Verdict.TIMETRACKER_WINS),
    ("remote edit, old unpushed local change", BASE, EDITED, 2_000, 1_000, WANTED_NEW, OLD, True,
     Verdict.JIRA_WINS),
    ("remote deletion, old local change", BASE, None, 2_000, 1_000, BASE, OLD, False, Verdict.JIRA_WINS),
    ("remote deletion, recent local change", BASE, None, 2_000, 1_000, BASE, RECENT, False,
     Verdict.TIMETRACKER_WINS),
    ("remote edit of an entry deleted here", BASE, EDITED, 2_000, 1_000, None, OLD, True,
     Verdict.TIMETRACKER_WINS),
    ("no updated stamp known: still judged by content", BASE, EDITED, None, None, BASE, OLD, False,
     Verdict.JIRA_WINS),
    ("window edge is inclusive", BASE, EDITED, 2_000, 1_000, BASE, NOW - WINDOW, False, Verdict.TIMETRACKER_WINS),
    ("just outside the window", BASE, EDITED, 2_000, 1_000, BASE, NOW - WINDOW - timedelta(seconds=1), False,
     Verdict.JIRA_WINS),
]


@pytest.mark.parametrize(
    ("base", "remote", "updated", "seen", "wanted", "changed_at", "unpushed", "verdict"),
    [c[1:] for c in CASES], ids=[c[0] for c in CASES],
)
def test_policy_table(base, remote, updated, seen, wanted, changed_at, unpushed, verdict) -> None:  # type: ignore[no-untyped-def]
    decision = decide(base=base, remote=remote, remote_updated_ms=updated, last_seen_updated_ms=seen, wanted=wanted,
                      local_changed_at=changed_at, now=NOW, window=WINDOW, unpushed_local_change=unpushed)
    assert decision.verdict is verdict
    assert decision.reason


def test_started_is_compared_as_an_instant_whatever_zone_jira_renders() -> None:
    berlin = WorklogSnapshot.of_remote("2026-11-25T09:00:00.000+0100", 5400, "#4711: Development: Fix login")
    utc = WorklogSnapshot.of_remote("2026-11-25T08:00:00.000+0000", 5400, "#4711: Development: Fix login")
    assert berlin == utc
    snapshot = utc
    decision = decide(base=snapshot, remote=berlin, remote_updated_ms=2, last_seen_updated_ms=1, wanted=snapshot,
                      local_changed_at=OLD, now=NOW, window=WINDOW, unpushed_local_change=False)
    assert decision.verdict is Verdict.IGNORE


def test_comment_whitespace_is_not_a_change() -> None:
    remote = WorklogSnapshot.of_remote("2026-11-25T08:00:00.000+0000", 5400, "  #4711: Development: Fix login\n")
    base = WorklogSnapshot.of_remote("2026-11-25T08:00:00.000+0000", 5400, "#4711: Development: Fix login")
    decision = decide(base=base, remote=remote, remote_updated_ms=2, last_seen_updated_ms=1, wanted=base,
                      local_changed_at=OLD, now=NOW, window=WINDOW, unpushed_local_change=False)
    assert decision.verdict is Verdict.IGNORE
