"""Admin CLI output shapes (CONTRACT section 9): `create-tenant` and `create-api-key` print one JSON object whose
values work, and refuse bad arguments with exit 2 and one line naming the argument."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from app.security.signatures import sign_timetracker

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=120)


async def run(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, *args)


def printed(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout  # one JSON object, nothing else on stdout
    body: dict[str, Any] = json.loads(lines[0])
    return body


async def test_create_tenant_prints_its_id_a_working_key_and_webhook_secret(api: Any, stack: Any) -> None:
    made = printed(await run("create-tenant", "--name", "CLI Co", "--timezone", "Europe/Berlin"))
    assert set(made) == {"tenant_id", "api_key", "webhook_secret"}
    tenant_id = uuid.UUID(made["tenant_id"])
    auth = {"Authorization": f"Bearer {made['api_key']}"}
    # the key works, and entries default to the tenant's zone
    r = await api.put("/api/v1/entries/1", headers=auth, json={
        "user": "jdoe", "ticket": "PROJ-1", "date": "2026-11-25", "start": "09:00", "duration": 30})
    assert r.status_code == 202 and r.json()["timezone"] == "Europe/Berlin"
    # the webhook secret signs TimeTracker's webhooks for this tenant
    entry = {"id": "2", "user": "jdoe", "ticket": "PROJ-1", "date": "2026-11-25", "start": "10:00", "duration": 15}
    body = json.dumps({"event": "entry.updated", "entry": entry}).encode()
    r = await api.post(f"/webhooks/timetracker/{tenant_id}", content=body, headers={
        "X-TimeTracker-Signature": sign_timetracker(made["webhook_secret"], body),
        "X-TimeTracker-Delivery": str(uuid.uuid4()), "Content-Type": "application/json"})
    assert r.status_code == 202, r.text


async def test_create_tenant_refuses_an_unknown_zone(stack: Any) -> None:
    done = await run("create-tenant", "--name", "Nowhere", "--timezone", "Mars/Olympus")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "error: --timezone: unknown IANA time zone 'Mars/Olympus'"


async def test_create_api_key_adds_a_second_working_key(api: Any, stack: Any, tenant: Any) -> None:
    made = printed(await run("create-api-key", "--tenant", str(tenant.tenant_id)))
    assert set(made) == {"tenant_id", "api_key"} and made["tenant_id"] == str(tenant.tenant_id)
    assert made["api_key"] != tenant.api_key
    for key in (made["api_key"], tenant.api_key):  # both work, for the same tenant
        r = await api.put("/api/v1/entries/k", headers={"Authorization": f"Bearer {key}"}, json={
            "user": "jdoe", "ticket": "PROJ-1", "date": "2026-11-25", "start": "09:00", "duration": 30})
        assert r.status_code == 202
    listed = await api.get("/api/v1/entries", headers={"Authorization": f"Bearer {made['api_key']}"})
    assert [e["id"] for e in listed.json()["items"]] == ["k"]


async def test_create_api_key_names_a_bad_tenant(stack: Any) -> None:
    for tenant, message in (("not-a-uuid", "error: --tenant: not a tenant id"),
                            (str(uuid.UUID(int=7)), f"error: --tenant: no tenant {uuid.UUID(int=7)}")):
        done = await run("create-api-key", "--tenant", tenant)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.strip() == message
