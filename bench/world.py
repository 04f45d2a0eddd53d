"""Tenants, JIRA instances and connected users, set up through the service's public surface.

A tenant comes from the admin CLI, an instance from `POST /api/v1/jira-instances`, and the user's JIRA
account is connected by the real OAuth 1.0a dance (start → the simulator's authorize page in approve mode →
the API's callback). Only the consumer registration is done on the simulator side, as a JIRA admin would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx

from bench.stack import ISSUES_PER_INSTANCE, ROOT, Bench


@dataclass
class Tenant:
    tenant_id: str
    api_key: str
    webhook_secret: str
    instance_id: str
    sim_instance: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def create_tenant(bench: Bench, name: str) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "app.cli", "create-tenant", "--name", name,
                          "--timezone", "Europe/Berlin"], env=bench.env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def connect_tenant(bench: Bench, sim_instance: str, *, rate: int = 10) -> Tenant:
    """A new tenant with one JIRA instance on `sim_instance` (project PROJ) and `jdoe` connected via OAuth."""
    t = create_tenant(bench, f"bench-{sim_instance}")
    headers = {"Authorization": f"Bearer {t['api_key']}"}
    with httpx.Client(base_url=bench.api_url, headers=headers, timeout=60, trust_env=False) as api:
        r = api.post("/api/v1/jira-instances", json={
            "name": f"sim {sim_instance}", "base_url": f"{bench.sim_url}/{sim_instance}",
            "consumer_key": f"tt-{sim_instance}", "rate_limit_per_second": rate, "project_keys": ["PROJ"]})
        r.raise_for_status()
        inst = r.json()
        bench.sim.add_consumer(sim_instance, f"tt-{sim_instance}", inst["public_key_pem"])
        r = api.post(f"/api/v1/jira-instances/{inst['id']}/oauth/start", json={"user": "jdoe"})
        r.raise_for_status()
        # the simulator's approve mode redirects to the API's callback, which exchanges the verifier
        done = httpx.get(r.json()["authorize_url"], follow_redirects=True, timeout=60, trust_env=False)
        done.raise_for_status()
        if done.json().get("status") != "connected":
            raise RuntimeError(f"OAuth dance for {sim_instance} did not connect: {done.text}")
    # the dance's requests must not count in the measurements
    bench.sim.reset(sim_instance, state=False, counters=True)
    return Tenant(t["tenant_id"], t["api_key"], t["webhook_secret"], inst["id"], sim_instance)


def entry(entry_id: str, i: int, *, minutes: int = 30) -> dict[str, Any]:
    """Entry number i: spread over the instance's issues and over days, so no two share an issue in a row."""
    day = date(2026, 11, 2) + timedelta(days=i % 28)
    return {"id": entry_id, "user": "jdoe", "ticket": f"PROJ-{i % ISSUES_PER_INSTANCE + 1}",
            "date": day.isoformat(), "start": f"{8 + i % 9:02d}:{(i * 7) % 60:02d}", "duration": minutes + i % 60,
            "timezone": "Europe/Berlin", "description": f"bench work {i}", "activity": "Development"}


def post_batch(bench: Bench, tenant: Tenant, entries: list[dict[str, Any]]) -> float:
    """Accept entries through the batch endpoint (≤1000 a call); returns the seconds the calls took."""
    took = 0.0
    with httpx.Client(base_url=bench.api_url, headers=tenant.headers, timeout=120, trust_env=False) as api:
        for start in range(0, len(entries), 1000):
            t0 = time.perf_counter()
            r = api.post("/api/v1/entries/batch", json={"entries": entries[start:start + 1000]})
            took += time.perf_counter() - t0
            r.raise_for_status()
            body = r.json()
            if body["accepted"] != len(entries[start:start + 1000]):
                raise RuntimeError(f"batch partly rejected: {body['results'][:3]}")
    return took


def counts(bench: Bench, tenant: Tenant) -> dict[str, int]:
    """Entries of the tenant's instance by sync status, from `GET /api/v1/stats`."""
    r = httpx.get(f"{bench.api_url}/api/v1/stats", headers=tenant.headers, timeout=30, trust_env=False)
    r.raise_for_status()
    for inst in r.json()["instances"]:
        if inst["id"] == tenant.instance_id:
            return dict(inst["counts"])
    return {}
