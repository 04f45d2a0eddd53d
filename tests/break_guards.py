"""`make guards`: break each guarded behaviour on purpose, show that its tests fail, restore the code.

A test that stays green when the code it guards is removed guards nothing. For each guard below this script
replaces one exact piece of source text with a broken version, runs the tests named for it (each one must fail),
puts the original text back (always, also on Ctrl-C), and at the end runs all of them against the real code
(they must pass). A source text that is no longer found is reported as such: the guard list must follow the code.

    python -m tests.break_guards            # every guard
    python -m tests.break_guards 2a 7b      # some of them

Not part of `make test` (about five minutes: every run starts its own PostgreSQL and Redis).
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Guard:
    key: str  # the item of issue 18 it belongs to, and a letter
    what: str  # the behaviour the tests guard, as broken
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


GUARDS = (
    Guard("1a", "the changes feed places records in insertion order, not in commit order",
          "app/db/repositories/entries.py",
          "UPDATE changes SET seq = last.seq + unplaced.n FROM unplaced, last WHERE changes.id = unplaced.id",
          "UPDATE changes SET seq = changes.id FROM unplaced, last WHERE changes.id = unplaced.id",
          ("tests/integration/test_activity_api.py::test_changes_feed_is_read_in_commit_order_while_writers_race",)),
    Guard("1b", "key rotation overwrites a secret written meanwhile (no compare-and-set)",
          "app/db/repositories/sealed.py",
          "update(sealed.model).where(sealed.model.id == row_id, column == old)",
          "update(sealed.model).where(sealed.model.id == row_id)",
          ("tests/integration/test_key_rotation.py::test_a_secret_written_during_rotation_is_kept",)),
    Guard("2a", "reconciliation windows do not overlap",
          "app/services/reconcile.py",
          "OVERLAP_MS = 120_000",
          "OVERLAP_MS = 0",
          ("tests/e2e/test_bidirectional.py::test_poll_windows_overlap_so_a_change_the_feed_shows_late_is_still_found",
           )),
    Guard("2b", "the worker's reconciliation loop never polls",
          "workers/reconcile.py",
          "                await poller.tick()\n",
          "                pass\n",
          ("tests/e2e/test_bidirectional.py::test_the_workers_polling_loop_finds_a_remote_edit_the_feed_shows_late",)),
    Guard("3", "a push sends one more request (JIRA's myself) before each create",
          "app/services/push.py",
          "            case Create():\n                return await jira.create_worklog(",
          "            case Create():\n                await jira.myself(target, on_call=on_call)\n"
          "                return await jira.create_worklog(",
          ("tests/e2e/test_sync_engine.py::test_each_change_costs_exactly_one_jira_request",)),
    Guard("6a", "a deletion is classified like any other change (the delete branch of classify_change)",
          "app/domain/entry.py",
          "    if incoming_deleted == stored_deleted and (incoming_deleted or incoming == stored):",
          "    if incoming == stored:",
          ("tests/unit/test_sync_decision.py::test_classify_change",)),
    Guard("6b", "an older change is applied (no stale check)",
          "app/domain/entry.py",
          "    if incoming_updated_at < stored_updated_at:\n        return ChangeOutcome.STALE\n",
          "",
          ("tests/unit/test_sync_decision.py::test_classify_change",
           "tests/integration/test_entries_api.py::test_an_older_delete_and_an_older_put_after_a_delete_are_stale",
           "tests/integration/test_timetracker_webhook.py::"
           "test_an_older_deletion_and_an_older_change_after_a_deletion_are_stale")),
    Guard("7a", "a 429 is an ordinary transient failure (it spends an attempt)",
          "app/jira/errors.py",
          "    if status == 429:\n        return rate_limited_from(headers)",
          '    if status == 429:\n        return TransientError("429", maybe_applied=False, status=status)',
          ("tests/e2e/test_sync_engine.py::test_a_429_is_waited_out_for_its_retry_after_without_spending_attempts",)),
    Guard("7b", "the client retries a 429 at once instead of after its Retry-After",
          "app/jira/client.py",
          "                await self._sleep(maybe_error.retry_after)",
          "                await self._sleep(0)",
          ("tests/unit/test_jira_errors.py::test_429_with_retry_after_is_retried_then_succeeds_without_the_caller_"
           "noticing",)),
    Guard("7c", "a 429 pauses nobody else (the shared gate ignores it)",
          "app/jira/ratelimit.py",
          "            if status == 429 and not cloud_paused:",
          "            if status == 429 and not cloud_paused and False:",
          ("tests/e2e/test_sync_engine.py::test_a_429_is_waited_out_for_its_retry_after_without_spending_attempts",
           "tests/integration/test_ratelimit.py::test_a_429_pauses_every_acquirer_for_its_whole_retry_after")),
)


def pytest(tests: tuple[str, ...]) -> tuple[set[str], str]:
    """Run the tests; which of them failed (a parametrized test fails when any of its cases does), and pytest's
    last line."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", *tests],
                          cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    failed = {t for t in tests for line in lines if line.startswith(f"FAILED {t}")}
    if done.returncode not in (0, 1):  # not a test outcome (collection error, no tests ran, ...): all count
        failed = set(tests)
    return failed, lines[-1] if lines else done.stderr.strip()[-200:]


def break_and_run(guard: Guard) -> tuple[str, str]:
    path = ROOT / guard.path
    original = path.read_text()
    if original.count(guard.old) != 1:
        return "STALE", f"the text to break is not found once in {guard.path}: update this guard"
    try:
        path.write_text(original.replace(guard.old, guard.new))
        failed, last = pytest(guard.tests)
    finally:
        path.write_text(original)
    kept = [t for t in guard.tests if t not in failed]
    return ("caught", last) if not kept else ("KEPT", f"{last}; still passing: {', '.join(kept)}")


def main(argv: list[str]) -> int:
    chosen = [g for g in GUARDS if not argv or g.key in argv]
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *sorted({g.path for g in chosen})], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print(f"uncommitted changes in the files this script breaks; commit or stash them first:\n{dirty}")
        return 2
    failures = 0
    for guard in chosen:
        started = time.monotonic()
        verdict, last = break_and_run(guard)
        failures += verdict != "caught"
        print(f"{guard.key:>3}  {verdict:<7} {time.monotonic() - started:5.0f} s  {guard.what}\n"
              f"     {last}", flush=True)
    failed, last = pytest(tuple(dict.fromkeys(t for g in chosen for t in g.tests)))
    passed = not failed
    failures += not passed
    print(f"restored: {'all guard tests pass' if passed else 'FAILING against the real code'}: {last}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
