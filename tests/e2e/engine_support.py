"""A small world for sync-engine tests: the simulator, a tenant with a JIRA instance and connected users,
real `python -m workers` processes, and waiting on what PostgreSQL says."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.db.models import EntryRow
from app.services.tenants import NewTenant, create_tenant
from jirasim.control import SimControl
from tests.waiting import wait_until as wait_until  # re-exported for the e2e tests

ROOT = Path(__file__).resolve().parents[2]
ISSUES = [f"PROJ-{i}" for i in range(1, 101)]


def sim_config(*, rate: float = 10, burst: int = 10, feed_delay: float = 60, name: str = "jira1",
               atlassian: dict[str, Any] | None = None) -> dict[str, Any]:
    """One simulator instance; with `atlassian` (the platform's config, `tests.conftest.atlassian_config`) a Jira Cloud
    site instead, whose own limits are Cloud's (`rate`/`burst` then do not apply)."""
    instance: dict[str, Any] = {
        "name": name, "display_timezone": "America/New_York", "feed_delay_seconds": feed_delay,
        "users": [{"name": u, "timezone": "Europe/Berlin"} for u in ("jdoe", "alice", "bob")],
        "issues": [{"key": k, "summary": f"Issue {k}"} for k in ISSUES],
    }
    if atlassian is None:
        return {"instances": [{**instance, "rate_limit": {"rate": rate, "burst": burst}}]}
    from tests.e2e.conftest import site_url

    return {**atlassian, "instances": [{**instance, "deployment": "cloud", "site_url": site_url(name)}]}


def point_at_platform(monkeypatch: Any, settings: Any, env: dict[str, str], sim_url: str) -> None:
    """Make this process's settings and the workers' environment use the Atlassian platform of the simulator at
    `sim_url` (a simulator of a test's own, not the session's)."""
    for name, path in (("atlassian_auth_url", "/auth.atlassian.com"), ("atlassian_api_url", "/api.atlassian.com")):
        monkeypatch.setattr(settings, name, sim_url + path)
        monkeypatch.setitem(env, name.upper(), sim_url + path)


@dataclass
class World:
    control: SimControl
    sim_instance: str
    tenant: NewTenant
    instance_id: uuid.UUID
    consumer_key: str
    headers: dict[str, str] = field(default_factory=dict)
    webhook_secret: str = ""
    setup: Any = None  # the tests.e2e.conftest.JiraSetup behind it (its auth, the secrets the simulator handed out)


async def build_world(app: Any, control: SimControl, instance_url: str, *, sim_instance: str = "jira1",
                      users: Iterable[str] = ("jdoe",), rate: int = 10, auth: str = "oauth1") -> World:
    """A tenant (as `create-tenant` makes it), its JIRA instance of `auth` through the instances API (the simulator
    set up for it: a consumer with the generated public key, or an External application link), and each user
    connected as the JIRA user of the same name (the OAuth dance, or a personal access token)."""
    import httpx

    from tests.e2e.conftest import connect_as, make_jira_setup

    async with app.state.sessionmaker() as session:
        tenant = await create_tenant(session, app.state.secret_box, name="E2E", timezone="Europe/Berlin")
        await session.commit()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as api:
        setup = await make_jira_setup(api, control, tenant, sim_name=sim_instance, base_url=instance_url,
                                      settings=app.state.settings, auth=auth, name="Main JIRA", project_keys=["PROJ"],
                                      rate_limit_per_second=rate)
        for user in users:
            assert await connect_as(api, control, setup, user, user) == "connected"
        # a few authenticated REST calls (ticket look-ups) warm the simulator's credential checks up: a cold first
        # one is slow and would bunch the arrival times of the requests queued behind it
        for key in ("PROJ-1", "PROJ-2", "PROJ-3"):
            r = await api.get(f"/api/v1/jira-instances/{setup.instance_id}/tickets/{key}",
                              params={"user": next(iter(users))}, headers=setup.headers)
            assert r.status_code == 200, r.text
    return World(control, sim_instance, tenant, uuid.UUID(setup.instance_id), setup.consumer_key, setup.headers,
                 setup.webhook_secret, setup)


def entry(ticket: str = "PROJ-1", **kw: Any) -> dict[str, Any]:
    base = {"user": "jdoe", "ticket": ticket, "date": "2026-11-25", "start": "09:00", "duration": 30,
            "timezone": "Europe/Berlin", "description": "work", "activity": "Development"}
    base.update(kw)
    return base


class Workers:
    """`python -m workers` processes on the test stack, like a supervisor would run them."""

    def __init__(self, env: dict[str, str], *, output: Path | None = None, **settings: Any) -> None:
        self.output = output  # where their stdout and stderr (the logs) go; None: this process's
        self.env = {**os.environ, **env, "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING",
                    "SWEEP_INTERVAL_SECONDS": "2", "JIRA_TIMEOUT_SECONDS": "5", "CIRCUIT_RESET_SECONDS": "2",
                    "SYNC_BACKOFF_BASE_SECONDS": "0.2", "RECONCILE_INTERVAL_SECONDS": "3600"}
        self.env.update({k.upper(): str(v) for k, v in settings.items()})
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, n: int = 1) -> Workers:
        for _ in range(n):
            out = self.output.open("ab") if self.output is not None else None
            try:
                self.procs.append(subprocess.Popen([sys.executable, "-m", "workers"], env=self.env, cwd=ROOT,
                                                   start_new_session=True, stdout=out, stderr=out))
            finally:
                if out is not None:
                    out.close()  # the child holds its own descriptor
        return self

    def kill_one(self) -> None:
        live = [p for p in self.procs if p.poll() is None]
        if live:
            live[0].send_signal(signal.SIGKILL)
            live[0].wait(5)

    def restart_dead(self) -> int:
        dead = [p for p in self.procs if p.poll() is not None]
        self.procs = [p for p in self.procs if p.poll() is None]
        self.start(len(dead))
        return len(dead)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 25
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()


async def statuses(app: Any, tenant_id: uuid.UUID) -> dict[str, str]:
    async with app.state.sessionmaker() as session:
        rows = await session.execute(select(EntryRow.id, EntryRow.sync_status).where(EntryRow.tenant_id == tenant_id))
        return {r[0]: r[1] for r in rows.all()}


async def count_by_status(app: Any, tenant_id: uuid.UUID) -> dict[str, int]:
    async with app.state.sessionmaker() as session:
        rows = await session.execute(select(EntryRow.sync_status, func.count()).where(
            EntryRow.tenant_id == tenant_id).group_by(EntryRow.sync_status))
        return {r[0]: r[1] for r in rows.all()}


def worklogs_by_anchor(control: SimControl, instance: str) -> dict[str, list[dict[str, Any]]]:
    """Every worklog in the simulator grouped by our `#<id>:` anchor."""
    from app.domain.worklog import anchor_of

    found: dict[str, list[dict[str, Any]]] = {}
    data = control.all_worklogs(instance)
    items = data.get("worklogs", data) if isinstance(data, dict) else data
    if isinstance(items, dict):
        items = [w for ws in items.values() for w in ws]
    for w in items:
        anchor = anchor_of(w.get("comment"))
        if anchor is not None:
            found.setdefault(anchor, []).append(w)
    return found


def densest_second(control: SimControl, instance: str = "jira1", *, since: float = 0.0
                   ) -> list[tuple[float, str, str]]:
    """The requests inside the busiest one-second window the simulator saw (since the unix time `since`)."""
    log = sorted((r for r in control.log(instance) if r["time"] >= since), key=lambda r: r["time"])
    best: list[dict[str, Any]] = []
    start = 0
    for end in range(len(log)):
        while log[end]["time"] - log[start]["time"] >= 1.0:
            start += 1
        if end - start + 1 > len(best):
            best = log[start : end + 1]
    t0 = best[0]["time"] if best else 0.0
    return [(round(r["time"] - t0, 3), r["method"], r["path"]) for r in best]


def _favour_the_simulator() -> None:
    """A real JIRA runs on its own hardware; on a shared 2-core test machine, scheduling priority is the
    closest thing, so its arrival timestamps are not skewed by the load we put on the machine."""
    import contextlib

    with contextlib.suppress(OSError):
        os.nice(-10)


class SimProcess:
    """The simulator in its own process (`python -m jirasim`), so its arrival times are not skewed by the
    test process's own work — what rate-limit assertions need. Same surface as SimServer."""

    def __init__(self, config: dict[str, Any], tmp_dir: Path) -> None:
        import json

        from devstack.servers import free_port

        self.port = free_port()
        path = tmp_dir / f"sim-{self.port}.json"
        path.write_text(json.dumps(config))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jirasim", "--port", str(self.port), "--config", str(path), "--log-level",
             "warning"], cwd=ROOT, start_new_session=True, preexec_fn=_favour_the_simulator,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.control = SimControl(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.control.health()
                break
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise
                time.sleep(0.1)

    def instance_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
