"""Worker lifecycle and the admin CLI around the queue: graceful shutdown, sync-pending."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

from tests.e2e.engine_support import ROOT, entry, wait_until


async def status_of(api, setup, entry_id, wanted):
    body = (await api.get(f"/api/v1/entries/{entry_id}", headers=setup.headers)).json()
    return body if body["sync"]["status"] == wanted else None


async def test_sigterm_lets_the_push_in_flight_finish_and_leaves_the_rest_queued(
        api, sim, jira_setup, connect_user, workers):
    setup = await jira_setup()
    await connect_user(setup, "jdoe")
    sim.control.set_faults(setup.sim_name, latency_ms=4000, writes_only=True)
    w = workers(1, JIRA_TIMEOUT_SECONDS=30)  # a write's 4 s stay well inside its timeout, however loaded the machine
    await api.put("/api/v1/entries/g1", json=entry(ticket="PROJ-1"), headers=setup.headers)
    # g2 waits for the issue: writes to one issue are never concurrent
    await api.put("/api/v1/entries/g2", json=entry(ticket="PROJ-1", start="11:00"), headers=setup.headers)

    async def g1_at_jira() -> bool:  # the worker has started and g1's write is on its way (4 s)
        return bool(sim.control.counters(setup.sim_name)["in_flight_writes"].get("PROJ-1"))

    await wait_until(g1_at_jira, timeout=60, interval=0.05)
    [proc] = w.procs
    proc.send_signal(signal.SIGTERM)
    rc = await asyncio.to_thread(proc.wait, 60)
    assert rc == 0
    # the push in flight finished (JIRA has the worklog and the entry knows its id) ...
    g1 = await status_of(api, setup, "g1", "synced")
    assert g1 is not None and g1["sync"]["worklog_id"]
    # ... and the other one is still pending, to be pushed by the next worker
    assert await status_of(api, setup, "g2", "pending")
    sim.control.clear_faults(setup.sim_name)
    workers(1)
    await wait_until(lambda: status_of(api, setup, "g2", "synced"), timeout=30)


def cli(stack, *args):
    env = {**os.environ, **stack.env}
    out = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


async def test_sync_pending_counts_queues_and_follows_the_backlog(api, stack, jira_setup, connect_user, workers):
    setup = await jira_setup()
    await connect_user(setup, "jdoe")
    tenant = str(setup.tenant.tenant_id)
    batch = [{**entry(ticket="PROJ-1", duration=10 + i), "id": f"p{i}"} for i in range(5)]
    r = await api.post("/api/v1/entries/batch", json={"entries": batch}, headers=setup.headers)
    assert r.status_code == 202 and r.json()["accepted"] == 5, r.text
    summary, _ = await asyncio.to_thread(cli, stack, "sync-pending", "--tenant", tenant, "--dry-run")
    assert summary["pending_found"] == 5 and summary["dry_run"] is True
    assert summary["statuses_now"] == {"pending": 5}
    # sync-pending follows the backlog: it is already watching (its bar shows 0/5) when the worker starts
    following = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "sync-pending", "--tenant", tenant, "--wait", "120",
        env={**os.environ, **stack.env}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert following.stderr is not None
    progress = b""
    while b"0/5" not in progress:
        chunk = await asyncio.wait_for(following.stderr.read(256), 60)
        assert chunk, progress
        progress += chunk
    workers(1)
    out, err = await asyncio.wait_for(following.communicate(), 150)
    assert following.returncode == 0, err.decode()
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["pending_found"] == 5 and summary["timed_out"] is False
    assert summary["statuses_now"] == {"synced": 5}
    assert "5/5" in (progress + err).decode()  # the progress bar reached the end
