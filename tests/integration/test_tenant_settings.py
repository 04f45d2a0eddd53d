"""Tenant settings (CONTRACT 11): allowed_origins via GET|PATCH /api/v1/tenant and the CLI, return_url checked
against them; a changed JIRA link (base_url, consumer_key, key pair) disconnects the instance's users."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from app.db.models import ConnectionRow, NotificationRow
from app.security.secrets import binding
from tests.integration.ops_data import add_instance


async def test_a_tenant_reads_and_sets_its_allowed_origins(api: httpx.AsyncClient, tenant: Any,
                                                           auth: dict[str, str]) -> None:
    r = await api.get("/api/v1/tenant", headers=auth)
    assert r.status_code == 200
    assert r.json()["id"] == str(tenant.tenant_id) and r.json()["allowed_origins"] == []
    r = await api.patch("/api/v1/tenant", headers=auth,
                        json={"allowed_origins": ["https://TT.example.com", "http://localhost:3000/",
                                                  "https://tt.example.com"]})
    assert r.status_code == 200, r.text
    assert r.json()["allowed_origins"] == ["https://tt.example.com", "http://localhost:3000"]
    assert (await api.get("/api/v1/tenant", headers=auth)).json()["allowed_origins"] == [
        "https://tt.example.com", "http://localhost:3000"]


@pytest.mark.parametrize("origin", ["tt.example.com", "ftp://tt.example.com", "https://tt.example.com/app",
                                    "https://user:pw@tt.example.com", "https://*.example.com", "*", "",
                                    "https://tt.example.com?x=1", "https://tt.example.com:99999"])
async def test_malformed_origins_are_refused(api: httpx.AsyncClient, auth: dict[str, str], origin: str) -> None:
    r = await api.patch("/api/v1/tenant", headers=auth, json={"allowed_origins": [origin]})
    assert r.status_code == 422, r.text
    assert (await api.get("/api/v1/tenant", headers=auth)).json()["allowed_origins"] == []


async def test_return_url_must_be_on_an_allowed_origin(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    made = await api.post("/api/v1/jira-instances", headers=auth,
                          json={"name": "Silent", "base_url": "http://127.0.0.1:9/jira"})  # nothing answers there
    instance_id = made.json()["id"]
    start = f"/api/v1/jira-instances/{instance_id}/oauth/start"
    # no list: any return_url is taken (and the start fails at JIRA, which shows the check passed)
    r = await api.post(start, json={"user": "jdoe", "return_url": "https://evil.example/"}, headers=auth)
    assert r.status_code == 502
    await api.patch("/api/v1/tenant", headers=auth, json={"allowed_origins": ["https://tt.example.com"]})
    r = await api.post(start, json={"user": "jdoe", "return_url": "https://evil.example/steal"}, headers=auth)
    assert r.status_code == 422
    assert r.json()["detail"] == ("return_url: https://evil.example is not one of the tenant's allowed_origins "
                                  "(PATCH /api/v1/tenant)")
    for sneaky in ("https://tt.example.com.evil.example/", "https://tt.example.com:8443/", "http://tt.example.com/"):
        assert (await api.post(start, json={"user": "jdoe", "return_url": sneaky}, headers=auth)).status_code == 422
    r = await api.post(start, json={"user": "jdoe", "return_url": "https://TT.example.com/settings?tab=jira"},
                       headers=auth)
    assert r.status_code == 502  # allowed: on to JIRA


async def test_cli_create_tenant_takes_origins(api: httpx.AsyncClient, stack: Any) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "app.cli", "create-tenant", "--name", "Origins", "--origin", "https://A.example/",
         "--origin", "https://b.example:8443"],
        env={**os.environ, **stack.env}, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["api_key"]
    tenant = (await api.get("/api/v1/tenant", headers={"Authorization": f"Bearer {key}"})).json()
    assert tenant["allowed_origins"] == ["https://a.example", "https://b.example:8443"]
    bad = subprocess.run([sys.executable, "-m", "app.cli", "create-tenant", "--name", "Bad", "--origin", "nope"],
                         env={**os.environ, **stack.env}, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "origin" in bad.stderr


async def _connections(app: Any, tenant_id: uuid.UUID, instance_id: uuid.UUID) -> dict[str, ConnectionRow]:
    async with app.state.sessionmaker() as session:
        rows = (await session.execute(select(ConnectionRow).where(
            ConnectionRow.tenant_id == tenant_id, ConnectionRow.jira_instance_id == instance_id))).scalars()
        return {r.user: r for r in rows}


async def _connect(app: Any, tenant_id: uuid.UUID, instance_id: uuid.UUID, user: str, status: str) -> None:
    box = app.state.secret_box
    cid = uuid.uuid4()
    async with app.state.sessionmaker() as session:
        session.add(ConnectionRow(
            id=cid, tenant_id=tenant_id, jira_instance_id=instance_id, user=user, jira_username=user, status=status,
            connected_at=datetime.now(UTC),
            access_token_enc=box.seal("tok", binding("jira_connections", "access_token", cid))
            if status == "connected" else None,
        ))
        await session.commit()


def _new_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.mark.parametrize("change", [{"base_url": "https://moved.example.invalid/jira"},
                                    {"consumer_key": "another-link"}, {"private_key_pem": "new"}])
async def test_a_changed_jira_link_disconnects_every_user(app: Any, api: httpx.AsyncClient, tenant: Any,
                                                          auth: dict[str, str], change: dict[str, str]) -> None:
    instance_id = await add_instance(api, tenant)
    for user, status in (("ann", "connected"), ("ben", "connected"), ("cid", "denied")):
        await _connect(app, tenant.tenant_id, instance_id, user, status)
    before = (await api.get(f"/api/v1/jira-instances/{instance_id}", headers=auth)).json()
    if "private_key_pem" in change:
        change = {"private_key_pem": _new_key()}
    r = await api.patch(f"/api/v1/jira-instances/{instance_id}", json=change, headers=auth)
    assert r.status_code == 200, r.text
    if "private_key_pem" in change:
        assert r.json()["public_key_pem"] != before["public_key_pem"]
        assert "private_key_pem" not in r.json()
    rows = await _connections(app, tenant.tenant_id, instance_id)
    assert {u: c.status for u, c in rows.items()} == {"ann": "auth_required", "ben": "auth_required",
                                                      "cid": "denied"}
    assert all(c.access_token_enc is None for c in rows.values())  # the old link's tokens are gone
    async with app.state.sessionmaker() as session:
        notes = (await session.execute(select(NotificationRow).where(
            NotificationRow.tenant_id == tenant.tenant_id, NotificationRow.jira_instance_id == instance_id))).scalars()
        by_user = sorted((n.user, n.kind) for n in notes)
    assert by_user == [("ann", "auth_required"), ("ben", "auth_required")]
    # the same values again, or other fields, leave the connections alone
    await _connect(app, tenant.tenant_id, instance_id, "dan", "connected")
    r = await api.patch(f"/api/v1/jira-instances/{instance_id}", json={"name": "Renamed", "rate_limit_per_second": 3},
                        headers=auth)
    assert r.status_code == 200
    assert (await _connections(app, tenant.tenant_id, instance_id))["dan"].status == "connected"
