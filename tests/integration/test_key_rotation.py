"""`rotate-encryption-key`: every sealed column re-encrypted under the active key, safely re-runnable.

The test database is shared by the session, so each test rotates to a new key and then back to the
session's key (the app's `SecretBox` only knows that one).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text

from app.config import EncryptionKey, parse_encryption_keys
from app.security.secrets import SecretBox, binding
from tests.waiting import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _new_key(kid: str) -> str:
    return f"{kid}:" + base64.b64encode(secrets.token_bytes(32)).decode()


async def _seed(api: httpx.AsyncClient, app: Any, tenant: Any, auth: dict[str, str]) -> dict[str, Any]:
    """An instance, a connection and an OAuth request of the tenant, sealed under the session's key."""
    from app.db.models import ConnectionRow, OAuthRequestRow

    r = await api.post("/api/v1/jira-instances", headers=auth,
                       json={"name": "Rotated", "base_url": "https://jira.example.com", "project_keys": ["PROJ"]})
    instance_id = uuid.UUID(r.json()["id"])
    # an OAuth 2.0 client secret too (the key pair stays stored)
    r2 = await api.patch(f"/api/v1/jira-instances/{instance_id}", headers=auth,
                         json={"auth": "oauth2", "client_id": "tt-client", "client_secret": "client-secret-1"})
    assert r2.status_code == 200, r2.text
    box: SecretBox = app.state.secret_box
    connection_id, request_id = uuid.uuid4(), uuid.uuid4()
    async with app.state.sessionmaker() as session:
        session.add(ConnectionRow(
            id=connection_id, tenant_id=tenant.tenant_id, jira_instance_id=instance_id, user="jdoe",
            status="connected",
            access_token_enc=box.seal("access-token-1", binding("jira_connections", "access_token", connection_id)),
            token_secret_enc=box.seal("token-secret-1", binding("jira_connections", "token_secret", connection_id)),
            refresh_token_enc=box.seal("refresh-1", binding("jira_connections", "refresh_token", connection_id))))
        session.add(OAuthRequestRow(
            id=request_id, tenant_id=tenant.tenant_id, jira_instance_id=instance_id, user="jdoe",
            request_token_hash=secrets.token_hex(32),
            request_token_enc=box.seal("request-token-1", binding("oauth_requests", "request_token", request_id)),
            request_secret_enc=box.seal("request-secret-1", binding("oauth_requests", "request_secret", request_id)),
            code_verifier_enc=box.seal("verifier-1", binding("oauth_requests", "code_verifier", request_id)),
            expires_at=datetime.now(UTC) + timedelta(minutes=10)))
        await session.commit()
    return {"instance_id": instance_id, "connection_id": connection_id, "request_id": request_id,
            "webhook_secret": r.json()["webhook_secret"]}


async def _sealed_values(app: Any, tenant_id: uuid.UUID, ids: dict[str, Any]) -> dict[str, tuple[bytes, bytes]]:
    """label → (sealed value, binding) of the seeded rows."""
    from app.db.models import ConnectionRow, JiraInstanceRow, OAuthRequestRow, Tenant

    async with app.state.sessionmaker() as session:
        t = (await session.execute(select(Tenant).where(Tenant.id == tenant_id))).scalar_one()
        i = (await session.execute(select(JiraInstanceRow).where(JiraInstanceRow.id == ids["instance_id"]))
             ).scalar_one()
        c = (await session.execute(select(ConnectionRow).where(ConnectionRow.id == ids["connection_id"]))
             ).scalar_one()
        o = (await session.execute(select(OAuthRequestRow).where(OAuthRequestRow.id == ids["request_id"]))
             ).scalar_one()
    assert c.access_token_enc and c.token_secret_enc and c.refresh_token_enc and o.request_secret_enc
    assert i.private_key_enc and i.oauth2_client_secret_enc and o.request_token_enc and o.code_verifier_enc
    return {
        "tenants.webhook_secret": (t.webhook_secret_enc, binding("tenants", "webhook_secret", t.id)),
        "jira_instances.private_key": (i.private_key_enc, binding("jira_instances", "private_key", i.id)),
        "jira_instances.webhook_secret": (i.webhook_secret_enc, binding("jira_instances", "webhook_secret", i.id)),
        "jira_instances.oauth2_client_secret": (i.oauth2_client_secret_enc,
                                                binding("jira_instances", "oauth2_client_secret", i.id)),
        "jira_connections.access_token": (c.access_token_enc, binding("jira_connections", "access_token", c.id)),
        "jira_connections.token_secret": (c.token_secret_enc, binding("jira_connections", "token_secret", c.id)),
        "jira_connections.refresh_token": (c.refresh_token_enc, binding("jira_connections", "refresh_token", c.id)),
        "oauth_requests.request_token": (o.request_token_enc, binding("oauth_requests", "request_token", o.id)),
        "oauth_requests.request_secret": (o.request_secret_enc, binding("oauth_requests", "request_secret", o.id)),
        "oauth_requests.code_verifier": (o.code_verifier_enc, binding("oauth_requests", "code_verifier", o.id)),
    }


async def test_rotation_reseals_every_column_and_is_rerunnable(
    api: httpx.AsyncClient, app: Any, settings: Any, tenant: Any, auth: dict[str, str],
) -> None:
    from app.services.key_rotation import rotate_encryption_key

    ids = await _seed(api, app, tenant, auth)
    old: tuple[EncryptionKey, ...] = settings.encryption_keys
    new = parse_encryption_keys(_new_key("k-new"))[0]
    before = await _sealed_values(app, tenant.tenant_id, ids)
    plain = {label: app.state.secret_box.open_bytes(v, aad) for label, (v, aad) in before.items()}
    rotated_box = SecretBox((new, *old))
    try:
        summary = await rotate_encryption_key(app.state.sessionmaker, rotated_box, batch_size=2)
        assert summary.active_key == "k-new" and summary.rotated >= 10
        after = await _sealed_values(app, tenant.tenant_id, ids)
        for label, (value, aad) in after.items():
            assert SecretBox.key_id(value) == "k-new", label
            assert SecretBox((new,)).open_bytes(value, aad) == plain[label], label
        assert plain["jira_instances.webhook_secret"].decode() == ids["webhook_secret"]

        again = await rotate_encryption_key(app.state.sessionmaker, rotated_box)
        assert again.rotated == 0
        assert again.unreadable == 0 and summary.unreadable == 0  # every value the suite stores can be opened
        assert all(c.already_current == c.scanned for c in again.columns.values())
        assert await _sealed_values(app, tenant.tenant_id, ids) == after  # untouched on a re-run
    finally:
        back = await rotate_encryption_key(app.state.sessionmaker, SecretBox((*old, new)))
    assert back.rotated >= 10
    restored = await _sealed_values(app, tenant.tenant_id, ids)
    assert all(SecretBox.key_id(v) == old[0].kid for v, _ in restored.values())


async def _blocked_on_a_row_lock(app: Any, task: asyncio.Task[Any]) -> bool:
    """True once `task` is done or some transaction waits for a row another one holds."""
    if task.done():
        return True
    async with app.state.engine.connect() as conn:
        waiting = (await conn.execute(text(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('transactionid', 'tuple')"
        ))).scalar_one()
    return bool(waiting)


async def test_a_secret_written_during_rotation_is_kept(
    api: httpx.AsyncClient, app: Any, settings: Any, tenant: Any, auth: dict[str, str],
) -> None:
    """Rotation read the old token, a reconnect stores a new one before rotation writes: the new one stays."""
    from app.db.models import ConnectionRow
    from app.services.key_rotation import rotate_encryption_key

    ids = await _seed(api, app, tenant, auth)
    old: tuple[EncryptionKey, ...] = settings.encryption_keys
    new = parse_encryption_keys(_new_key("k-race"))[0]
    rotated_box = SecretBox((new, *old))
    box: SecretBox = app.state.secret_box  # a process not restarted yet: it still seals under the old key
    cid = ids["connection_id"]
    try:
        async with app.state.sessionmaker() as writer:
            row = await writer.get(ConnectionRow, cid)
            assert row is not None
            row.access_token_enc = box.seal("access-token-2", binding("jira_connections", "access_token", cid))
            row.token_secret_enc = box.seal("token-secret-2", binding("jira_connections", "token_secret", cid))
            await writer.flush()  # written, not committed: the row is locked until the reconnect commits
            rotation = asyncio.create_task(rotate_encryption_key(app.state.sessionmaker, rotated_box))
            await wait_until(lambda: _blocked_on_a_row_lock(app, rotation), timeout=60, interval=0.05)
            assert not rotation.done(), "rotation must meet the row the reconnect is writing"
            await writer.commit()
        summary = await asyncio.wait_for(rotation, 60)
        after = await _sealed_values(app, tenant.tenant_id, ids)
        token, aad = after["jira_connections.access_token"]
        secret, secret_aad = after["jira_connections.token_secret"]
        assert rotated_box.open_bytes(token, aad) == b"access-token-2"  # the reconnect's token, not the old one
        assert rotated_box.open_bytes(secret, secret_aad) == b"token-secret-2"
        assert summary.columns["jira_connections.access_token"].changed_meanwhile == 1
    finally:
        back = await rotate_encryption_key(app.state.sessionmaker, SecretBox((*old, new)))
        assert back.unreadable == 0


def test_cli_prints_a_json_summary(stack: Any, settings: Any) -> None:
    session_keys = os.environ["ENCRYPTION_KEYS"]
    new = _new_key("k-cli")

    def run(keys: str) -> dict[str, Any]:
        env = {**os.environ, "ENCRYPTION_KEYS": keys}
        done = subprocess.run([sys.executable, "-m", "app.cli", "rotate-encryption-key"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (done.stdout, done.stderr)
        summary: dict[str, Any] = json.loads(done.stdout)
        assert summary["unreadable"] == 0
        return summary

    first = run(f"{new},{session_keys}")
    assert first["active_key"] == "k-cli"
    assert set(first["columns"]) == {
        "tenants.webhook_secret", "jira_instances.private_key", "jira_instances.webhook_secret",
        "jira_instances.oauth2_client_secret", "jira_connections.access_token", "jira_connections.token_secret",
        "jira_connections.refresh_token", "oauth_requests.request_token", "oauth_requests.request_secret",
        "oauth_requests.code_verifier", "user_token_keys.secret"}
    second = run(f"{new},{session_keys}")
    assert second["rotated"] == 0
    back = run(f"{session_keys},{new}")
    assert back["active_key"] == parse_encryption_keys(session_keys)[0].kid
    assert back["rotated"] >= first["rotated"]  # everything readable is back under the session's key
