"""Request log, concurrent-write tracking, multiple instances, runtime setup, the CLI."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from jirasim.control import SimControl
from jirasim.testing import OAuthSigner, SimServer

from .conftest import CONSUMER, Jira, Keys, http, make_jira


def test_request_log(sim: SimServer, alice: Jira) -> None:
    alice.add_worklog("PROJ-2")
    alice("GET", "issue/PROJ-2/worklog", params={"startAt": 0})
    log = sim.control.log("jira1")
    assert [(e["method"], e["status"], e["write"]) for e in log] == [("POST", 201, True), ("GET", 200, False)]
    entry = log[1]
    assert entry["path"] == "/jira1/rest/api/2/issue/PROJ-2/worklog"
    assert entry["query"] == "startAt=0"
    assert entry["user"] == "alice" and entry["issue_key"] == "PROJ-2"
    assert entry["instance"] == "jira1" and entry["duration_ms"] >= 0
    assert (entry["auth"], entry["client"]) == ("oauth1", CONSUMER)
    assert sim.control.log(limit=1)[0]["method"] == "GET"
    assert sim.control.counters("jira1")["worklogs_per_issue"]["PROJ-2"] == 1


async def test_concurrent_writes_per_issue(sim: SimServer, keys: Keys) -> None:
    sim.control.set_faults("jira1", latency_ms=600)
    token, secret = sim.control.grant_token("jira1", CONSUMER, "alice")
    signer = OAuthSigner(CONSUMER, keys.private_pem, token, secret)
    base = f"{sim.instance_url('jira1')}/rest/api/2"
    body = {"timeSpentSeconds": 600, "started": "2026-11-25T09:00:00.000+0100"}
    async with httpx.AsyncClient(auth=signer, timeout=10, trust_env=False, verify=False) as client:
        together = [client.post(f"{base}/issue/PROJ-1/worklog", json=body) for _ in range(4)]
        results = await asyncio.gather(*together)
        assert [r.status_code for r in results] == [201] * 4
        for _ in range(2):
            assert (await client.post(f"{base}/issue/PROJ-2/worklog", json=body)).status_code == 201
        # by numeric id, counted under the key
        issue_id = (await client.get(f"{base}/issue/PROJ-3")).json()["id"]
        assert (await client.post(f"{base}/issue/{issue_id}/worklog", json=body)).status_code == 201
    counters = sim.control.counters("jira1")
    assert counters["max_concurrent_writes"] == {"PROJ-1": 4, "PROJ-2": 1, "PROJ-3": 1}
    assert counters["in_flight_writes"] == {}
    assert counters["worklogs_per_issue"] == {"PROJ-1": 4, "PROJ-2": 2, "PROJ-3": 1, "OTHER-1": 0}


def test_instances_are_independent(sim: SimServer, keys: Keys) -> None:
    one = make_jira(sim, keys, "jira1")
    two = make_jira(sim, keys, "jira2")
    a = one.add_worklog("PROJ-1").json()
    b = two.add_worklog("PROJ-1").json()
    assert a["id"] == b["id"]  # ids collide across instances, like separate JIRAs
    assert a["self"].startswith(sim.instance_url("jira1")) and b["self"].startswith(sim.instance_url("jira2"))
    assert len(sim.control.worklogs("jira1", "PROJ-1")) == 1
    assert sim.control.counters("jira2")["requests"] == 1
    one.close()
    two.close()


def test_runtime_instance_user_issue(sim: SimServer, keys: Keys) -> None:
    if "jira9" not in {i["name"] for i in sim.control.instances()}:
        sim.control.add_instance({"name": "jira9", "display_timezone": "Asia/Tokyo"})
    sim.control.add_consumer("jira9", CONSUMER, keys.public_pem)
    sim.control.add_user("jira9", "dave", "Dave D", timezone="Asia/Tokyo")
    sim.control.add_issue("jira9", "NEW-1", "parent")
    sim.control.add_issue("jira9", "NEW-2", "child", parent="NEW-1")
    jira = make_jira(sim, keys, "jira9", "dave")
    wl = jira.add_worklog("NEW-2", started="2026-11-25T09:00:00.000+0000").json()
    assert wl["started"] == "2026-11-25T18:00:00.000+0900"
    assert jira("GET", "search", params={"jql": "parent = NEW-1"}).json()["total"] == 1
    jira.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli(tmp_path: Path, keys: Keys) -> None:
    config = {
        "instances": [
            {
                "name": "jiraA",
                "users": [{"name": "erin"}],
                "issues": [{"key": "ABC-1"}],
                "consumers": [{"consumer_key": CONSUMER, "public_key_file": "pub.pem"}],
            }
        ]
    }
    (tmp_path / "pub.pem").write_text(keys.public_pem)
    (tmp_path / "sim.json").write_text(json.dumps(config))
    port = _free_port()
    cmd = [sys.executable, "-m", "jirasim", "--port", str(port), "--config", str(tmp_path / "sim.json")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if http.get(f"{url}/_sim/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        with SimControl(url) as control:
            token, secret = control.grant_token("jiraA", CONSUMER, "erin")
        signer = OAuthSigner(CONSUMER, keys.private_pem, token, secret)
        me = http.get(f"{url}/jiraA/rest/api/2/myself", auth=signer)
        assert me.status_code == 200 and me.json()["name"] == "erin"
    finally:
        proc.terminate()
        proc.wait(10)
