"""Fault injection: latency, 5xx, write-then-fail, hangs, holds, scripted rules, remote changes."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from jirasim.faults import FaultInjector, FaultRule, FaultSettings
from jirasim.testing import SimServer

from .conftest import Jira


def test_latency_with_jitter(sim: SimServer, alice: Jira) -> None:
    sim.control.set_faults("jira1", latency_ms=300, jitter_ms=50)
    started = time.monotonic()
    assert alice("GET", "myself").status_code == 200
    assert time.monotonic() - started >= 0.25
    entry = sim.control.log("jira1")[-1]
    assert entry["duration_ms"] >= 250
    assert sim.control.counters("jira1")["faults"] == {"latency": 1}


def test_error_rate(sim: SimServer, alice: Jira) -> None:
    sim.control.set_faults("jira1", error_rate=1.0, error_statuses=[503])
    r = alice.add_worklog("PROJ-1")
    assert r.status_code == 503
    assert sim.control.worklogs("jira1", "PROJ-1") == []
    sim.control.set_faults("jira1", error_rate=1.0, error_statuses=[500, 502])
    statuses = {alice("GET", "myself").status_code for _ in range(12)}
    assert statuses <= {500, 502} and statuses
    sim.control.clear_faults("jira1")
    assert alice("GET", "myself").status_code == 200
    faults = sim.control.counters("jira1")["faults"]
    assert faults["error_503"] == 1
    assert sum(faults.values()) == 13


def test_write_applied_then_502(sim: SimServer, alice: Jira) -> None:
    sim.control.set_faults("jira1", fail_after_write_rate=1.0, fail_after_write_mode="502")
    r = alice.add_worklog("PROJ-1", comment="did it land?")
    assert r.status_code == 502
    landed = sim.control.worklogs("jira1", "PROJ-1")
    assert [w["comment"] for w in landed] == ["did it land?"]
    assert alice("GET", "myself").status_code == 200  # reads are not affected


def test_write_applied_then_connection_dropped(sim: SimServer, alice: Jira) -> None:
    sim.control.add_fault_rule("jira1", "fail_after_write", mode="drop")
    with pytest.raises(httpx.RemoteProtocolError):
        alice.add_worklog("PROJ-1", comment="dropped")
    assert [w["comment"] for w in sim.control.worklogs("jira1", "PROJ-1")] == ["dropped"]
    assert alice.add_worklog("PROJ-1").status_code == 201  # the rule was one-shot
    log = sim.control.log("jira1")
    assert [e["status"] for e in log if e["write"]] == [0, 201]
    assert log[-2]["fault"] == "fail_after_write_drop"


def test_write_applied_then_timeout(sim: SimServer, alice: Jira) -> None:
    sim.control.add_fault_rule("jira1", "fail_after_write", mode="timeout", seconds=1.5)
    wl = sim.control.create_worklog_as("jira1", "PROJ-1", "alice", 600)
    with pytest.raises(httpx.ReadTimeout):
        alice("PUT", f"issue/PROJ-1/worklog/{wl['id']}", json={"comment": "late"}, timeout=0.5)
    assert sim.control.worklogs("jira1", "PROJ-1")[0]["comment"] == "late"


def test_hang(sim: SimServer, alice: Jira) -> None:
    sim.control.set_faults("jira1", hang_rate=1.0, hang_seconds=1.5, writes_only=True)
    assert alice("GET", "myself").status_code == 200
    with pytest.raises(httpx.ReadTimeout):
        alice.add_worklog("PROJ-1", timeout=0.5)
    assert sim.control.worklogs("jira1", "PROJ-1") == []


def test_a_held_request_waits_for_its_release_then_is_served(sim: SimServer, alice: Jira) -> None:
    sim.control.add_fault_rule("jira1", "hold", writes_only=True)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(alice.add_worklog, "PROJ-1")
        deadline = time.monotonic() + 10
        while not sim.control.counters("jira1")["in_flight_writes"].get("PROJ-1"):  # at JIRA, not answered
            assert time.monotonic() < deadline and not held.done()
            time.sleep(0.02)
        assert alice("GET", "myself").status_code == 200  # only what the rule matched is held
        assert not held.done() and sim.control.worklogs("jira1", "PROJ-1") == []
        sim.control.release_holds("jira1")
        assert held.result(10).status_code == 201
    assert len(sim.control.worklogs("jira1", "PROJ-1")) == 1
    assert [e["method"] for e in sim.control.log("jira1") if e["fault"] == "hold"] == ["POST"]
    # a hold nobody releases ends after its `seconds`, and the request is served as usual
    sim.control.add_fault_rule("jira1", "hold", seconds=0.3)
    started = time.monotonic()
    assert alice("GET", "myself").status_code == 200
    assert time.monotonic() - started >= 0.3
    assert sim.control.faults("jira1")["rules"] == []


def test_scripted_rules(sim: SimServer, alice: Jira) -> None:
    sim.control.add_fault_rule("jira1", "error", count=2, status=500, path_contains="/worklog")
    assert alice("GET", "myself").status_code == 200
    assert alice.add_worklog("PROJ-1").status_code == 500
    assert alice("GET", "issue/PROJ-1/worklog").status_code == 500
    assert alice.add_worklog("PROJ-1").status_code == 201
    sim.control.add_fault_rule("jira1", "drop", method="GET")
    with pytest.raises(httpx.RemoteProtocolError):
        alice("GET", "myself")
    sim.control.add_fault_rule("jira1", "latency", latency_ms=200)
    started = time.monotonic()
    alice("GET", "myself")
    assert time.monotonic() - started >= 0.2
    sim.control.add_fault_rule("jira1", "rate_limit", retry_after=3)
    limited = alice("GET", "myself")  # Data Center's 429: Retry-After, no Cloud reason
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert "RateLimit-Reason" not in limited.headers
    # (an earlier test's hang may end, and be logged, meanwhile)
    assert [e["retry_after"] for e in sim.control.log("jira1") if e["status"] == 429] == [3]
    assert sim.control.faults("jira1")["rules"] == []


def test_fault_settings_validation(sim: SimServer) -> None:
    with pytest.raises(Exception, match="400"):
        sim.control.set_faults("jira1", error_rate=2)
    with pytest.raises(Exception, match="400"):
        sim.control.set_faults("jira1", no_such_setting=1)
    with pytest.raises(Exception, match="400"):
        sim.control.add_fault_rule("jira1", "explode")


def test_injector_is_reproducible_with_seed() -> None:
    def run() -> list[int | None]:
        injector = FaultInjector(FaultSettings(error_rate=0.5, seed=7))
        return [injector.before("GET", "/x", False).error_status for _ in range(20)]

    assert run() == run()
    injector = FaultInjector()
    injector.add_rule(FaultRule.from_dict({"kind": "error", "writes_only": True}))
    assert injector.before("GET", "/x", False).error_status is None
    assert injector.before("POST", "/x", True).error_status == 503


def test_remote_edit_and_delete(sim: SimServer, alice: Jira) -> None:
    wl = alice.add_worklog("PROJ-1", 3600, comment="mine").json()
    since = int(time.time() * 1000)
    time.sleep(0.01)
    edited = sim.control.remote_edit(
        "jira1", wl["id"], time_spent_seconds=1800, comment="fixed by PM",
        started="2026-11-25T10:00:00.000+0100", as_user="bob",
    )  # fmt: skip
    assert edited["updateAuthor"]["name"] == "bob"
    fetched = alice("GET", f"issue/PROJ-1/worklog/{wl['id']}").json()
    assert fetched["timeSpentSeconds"] == 1800
    assert fetched["comment"] == "fixed by PM"
    assert fetched["started"] == "2026-11-25T10:00:00.000+0100"
    assert fetched["updated"] > wl["updated"]
    feed = alice("GET", "worklog/updated", params={"since": since}).json()
    assert [v["worklogId"] for v in feed["values"]] == [int(wl["id"])]

    sim.control.remote_delete("jira1", wl["id"])
    assert alice("GET", f"issue/PROJ-1/worklog/{wl['id']}").status_code == 404
    deleted = alice("GET", "worklog/deleted", params={"since": since}).json()
    assert [v["worklogId"] for v in deleted["values"]] == [int(wl["id"])]


def test_worklog_created_by_someone_else(sim: SimServer, alice: Jira) -> None:
    wl = sim.control.create_worklog_as("jira1", "PROJ-2", "carol", 900, started="2026-11-25T08:00:00Z", comment="x")
    assert wl["author"]["name"] == "carol"
    assert wl["started"] == "2026-11-25T09:00:00.000+0100"
    listing = alice("GET", "issue/PROJ-2/worklog").json()
    assert [w["author"]["name"] for w in listing["worklogs"]] == ["carol"]
    assert alice("DELETE", f"issue/PROJ-2/worklog/{wl['id']}").status_code == 403


def test_reset(sim: SimServer, alice: Jira) -> None:
    alice.add_worklog("PROJ-1")
    sim.control.set_faults("jira1", latency_ms=10)
    sim.control.add_issue("jira1", "NEW-1", "added at runtime")
    sim.control.reset("jira1")
    assert sim.control.all_worklogs("jira1")["worklogs"] == []
    assert sim.control.faults("jira1")["settings"]["latency_ms"] == 0
    assert "NEW-1" not in sim.control.describe("jira1")["issues"]
    assert sim.control.counters("jira1")["requests"] == 0
    assert sim.control.log("jira1") == []
