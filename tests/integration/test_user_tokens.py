"""User tokens (CONTRACT 14): minted and revoked with the tenant's API key, acting for one user only, refused when
expired, revoked or forged, useless at another tenant, never stored in clear; every route's scope is declared.

The two-user world (`two_users`) is made the way production makes it: a JIRA instance through the API on the
simulator, alice and bob connected through the OAuth dance, their entries written by the push engine, edited in
JIRA long after their last local change (conflicts, with a notification each).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db.models import UserTokenKey
from app.security.secrets import binding
from app.security.user_tokens import KeyId, mint, new_signing_secret
from tests.integration.jira_world import ENTRY, Jira, outcome, synced_entry
from tests.waiting import wait_until


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def mint_token(api: httpx.AsyncClient, api_key: str, user: str, **body: Any) -> str:
    r = await api.post("/api/v1/user-tokens", json={"user": user, **body}, headers=bearer(api_key))
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


# -- minting and revoking ------------------------------------------------------------------------------------------

async def test_the_api_key_mints_a_token_for_one_user(api: httpx.AsyncClient, tenant: Any) -> None:
    before = datetime.now(UTC)
    r = await api.post("/api/v1/user-tokens", json={"user": "jdoe"}, headers=bearer(tenant.api_key))
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"token", "user", "expires_at"} and body["user"] == "jdoe"
    expires = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(seconds=899) <= expires <= datetime.now(UTC) + timedelta(seconds=900)
    r = await api.post("/api/v1/user-tokens", json={"user": "jdoe", "ttl_seconds": 43200},
                       headers=bearer(tenant.api_key))
    assert datetime.fromisoformat(r.json()["expires_at"]) > datetime.now(UTC) + timedelta(hours=11)
    me = (await api.get("/api/v1/me", headers=bearer(body["token"]))).json()
    assert (me["kind"], me["user"], me["tenant"]["id"]) == ("user_token", "jdoe", str(tenant.tenant_id))
    assert me["expires_at"] is not None
    me = (await api.get("/api/v1/me", headers=bearer(tenant.api_key))).json()
    assert (me["kind"], me["user"], me["expires_at"]) == ("api_key", None, None)


@pytest.mark.parametrize(("body", "field"), [
    ({"user": "jdoe", "ttl_seconds": 59}, "ttl_seconds"), ({"user": "jdoe", "ttl_seconds": 43201}, "ttl_seconds"),
    ({"user": ""}, "user"), ({"user": "a\nb"}, "user"), ({"user": "x" * 201}, "user"), ({}, "user"),
    ({"user": "jdoe", "scope": "admin"}, "scope"),
])
async def test_bad_mint_requests_name_the_field(api: httpx.AsyncClient, tenant: Any, body: dict[str, Any],
                                                field: str) -> None:
    r = await api.post("/api/v1/user-tokens", json=body, headers=bearer(tenant.api_key))
    assert r.status_code == 422, r.text
    assert field in json.dumps(r.json()["detail"])


async def test_a_user_token_can_neither_mint_nor_revoke(api: httpx.AsyncClient, tenant: Any) -> None:
    token = await mint_token(api, tenant.api_key, "jdoe")
    r = await api.post("/api/v1/user-tokens", json={"user": "jdoe"}, headers=bearer(token))
    assert r.status_code == 403 and "API key" in r.json()["detail"]
    assert (await api.delete("/api/v1/user-tokens?user=jdoe", headers=bearer(token))).status_code == 403


async def test_revocation_is_immediate_in_every_process(api: httpx.AsyncClient, settings: Any, tenant: Any) -> None:
    from app.main import create_app

    other = create_app(settings)  # another API process: its own caches and Redis connections
    async with other.router.lifespan_context(other):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://other") as api2:
            token = await mint_token(api, tenant.api_key, "jdoe")
            kept = await mint_token(api, tenant.api_key, "mary")
            for client in (api, api2):  # both processes have seen (and cached what they could of) the token
                assert (await client.get("/api/v1/entries", headers=bearer(token))).status_code == 200
            r = await api.delete("/api/v1/user-tokens?user=jdoe", headers=bearer(tenant.api_key))
            assert r.status_code == 204, r.text
            for client in (api2, api):
                r = await client.get("/api/v1/entries", headers=bearer(token))
                assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
                assert (await client.get("/api/v1/entries", headers=bearer(kept))).status_code == 200
            fresh = await mint_token(api, tenant.api_key, "jdoe")  # new tokens work again
            assert (await api2.get("/api/v1/entries", headers=bearer(fresh))).status_code == 200
    audit = (await api.get("/api/v1/audit", headers=bearer(tenant.api_key))).json()
    assert any(a["action"] == "user_tokens.revoke" and "jdoe" in a["detail"] for a in audit)


async def test_revocation_survives_redis_forgetting(api: httpx.AsyncClient, redis: Any, tenant: Any) -> None:
    """PostgreSQL holds the truth: a Redis that lost its copy (restarted, flushed) puts it back from there."""
    token = await mint_token(api, tenant.api_key, "jdoe")
    assert (await api.delete("/api/v1/user-tokens?user=jdoe", headers=bearer(tenant.api_key))).status_code == 204
    await redis.delete(*[k async for k in redis.scan_iter(match=f"ttsync:user-token-gen:{{{tenant.tenant_id}}}:*")])
    assert (await api.get("/api/v1/entries", headers=bearer(token))).status_code == 401
    fresh = await mint_token(api, tenant.api_key, "jdoe")
    assert (await api.get("/api/v1/entries", headers=bearer(fresh))).status_code == 200


async def test_an_expired_token_is_refused(api: httpx.AsyncClient, app: Any, tenant: Any) -> None:
    async with app.state.sessionmaker() as session:
        minted = await app.state.user_tokens.mint(session, tenant.tenant_id, "jdoe", 60,
                                                  now=datetime.now(UTC) - timedelta(seconds=61))
        await session.commit()
    r = await api.get("/api/v1/entries", headers=bearer(minted.token))
    assert r.status_code == 401 and "expired" in r.json()["detail"]


async def _signing_secret(app: Any, tenant_id: uuid.UUID) -> tuple[KeyId, bytes]:
    async with app.state.sessionmaker() as session:
        row = (await session.execute(select(UserTokenKey).where(UserTokenKey.tenant_id == tenant_id))).scalar_one()
    return KeyId(tenant_id, row.version), app.state.secret_box.open_bytes(
        row.secret_enc, binding("user_token_keys", "secret", row.id))


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


async def test_forged_tokens_are_refused(api: httpx.AsyncClient, app: Any, tenant: Any) -> None:
    genuine = await mint_token(api, tenant.api_key, "jdoe")
    key_id, _ = await _signing_secret(app, tenant.tenant_id)
    now = datetime.now(UTC)
    other_secret, _ = mint(key_id=key_id, secret=new_signing_secret(), user="jdoe", generation=0, now=now,
                           ttl_seconds=600)
    header, payload, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = [
        other_secret,  # signed with a secret that is not the tenant's
        f"{header}.{_b64({**claims, 'sub': 'boss'})}.{signature}",  # another user, the old signature
        f"{header}.{_b64({**claims, 'exp': claims['exp'] + 86400})}.{signature}",  # a longer life
        f"{_b64({'alg': 'none', 'kid': str(key_id)})}.{payload}.",  # no signature at all
        f"{_b64({'alg': 'HS512', 'kid': str(key_id)})}.{payload}.{signature}",
        f"{_b64({'alg': 'HS256', 'kid': f'{uuid.uuid4()}.1'})}.{payload}.{signature}",  # an unknown key
        f"{_b64({'alg': 'HS256', 'kid': 'x'})}.{payload}.{signature}",
        "a.b.c", "..", genuine + "x", genuine[:-2], "tts_" + genuine, "é.é.é", "x" * 5000 + ".a.b",
    ]
    for token in forged:
        r = await api.get("/api/v1/entries", headers={"Authorization": f"Bearer {token}".encode()})
        assert r.status_code == 401, (token, r.text)
    assert (await api.get("/api/v1/entries", headers=bearer(genuine))).status_code == 200


async def test_a_token_of_one_tenant_is_useless_at_another(api: httpx.AsyncClient, app: Any,
                                                           make_tenant: Any) -> None:
    a, b = await make_tenant("A"), await make_tenant("B")
    for t, description in ((a, "A's"), (b, "B's")):
        r = await api.put("/api/v1/entries/4711", json={**ENTRY, "description": description}, headers=bearer(t.api_key))
        assert r.status_code == 202
    token_a = await mint_token(api, a.api_key, "jdoe")
    await mint_token(api, b.api_key, "jdoe")  # B has a signing secret too
    # the token acts in A, whatever it is used for: A's entry 4711, never B's
    assert (await api.get("/api/v1/entries/4711", headers=bearer(token_a))).json()["description"] == "A's"
    # pointed at B's key, A's token does not verify
    key_b, _ = await _signing_secret(app, b.tenant_id)
    _header, payload, signature = token_a.split(".")
    as_b = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': str(key_b)})}.{payload}.{signature}"
    assert (await api.get("/api/v1/entries/4711", headers=bearer(as_b))).status_code == 401
    # B's secret signing a token that says tenant A: the tid claim does not match its key
    _, secret_b = await _signing_secret(app, b.tenant_id)
    token, _ = mint(key_id=key_b, secret=secret_b, user="jdoe", generation=0, now=datetime.now(UTC), ttl_seconds=60)
    parts = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    assert claims["tid"] == str(b.tenant_id)
    # revoking jdoe at B leaves A's jdoe alone
    assert (await api.delete("/api/v1/user-tokens?user=jdoe", headers=bearer(b.api_key))).status_code == 204
    assert (await api.get("/api/v1/entries/4711", headers=bearer(token_a))).status_code == 200


async def test_a_database_dump_holds_no_token_and_no_signing_secret_in_clear(
        api: httpx.AsyncClient, app: Any, stack: Any, tenant: Any) -> None:
    tokens = [await mint_token(api, tenant.api_key, user) for user in ("jdoe", "mary", "jdoe")]
    for token in tokens:
        assert (await api.get("/api/v1/entries", headers=bearer(token))).status_code == 200
    assert (await api.delete("/api/v1/user-tokens?user=mary", headers=bearer(tenant.api_key))).status_code == 204
    _, secret = await _signing_secret(app, tenant.tenant_id)
    db = stack.env["DATABASE_URL"].rsplit("/", 1)[1]
    dump = subprocess.run(
        [f"{stack.postgres.extra['bindir']}/pg_dump", "-h", "127.0.0.1", "-p", str(stack.postgres.port),
         "-U", "postgres", "--data-only", db], check=True, capture_output=True, timeout=120).stdout
    assert b"user_token_keys" in dump  # the secret is in there, sealed
    for token in tokens:
        for part in (token, token.split(".")[2]):  # the whole token, or its signature
            assert part.encode() not in dump
    for form in (secret, secret.hex().encode(), base64.b64encode(secret), base64.urlsafe_b64encode(secret)):
        assert form not in dump


def _rotate(tenant_id: uuid.UUID, *extra: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "app.cli", "rotate-user-token-key", "--tenant", str(tenant_id),
                           *extra], env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def test_signing_secrets_rotate_from_the_cli(api: httpx.AsyncClient, tenant: Any) -> None:
    before = await mint_token(api, tenant.api_key, "jdoe")
    rotated = await asyncio.to_thread(_rotate, tenant.tenant_id)
    assert (rotated["version"], rotated["dropped"]) == (2, 0)
    # the previous version still verifies (its tokens live on until they expire)
    assert (await api.get("/api/v1/entries", headers=bearer(before))).status_code == 200
    revoked = await asyncio.to_thread(_rotate, tenant.tenant_id, "--revoke-all")
    assert revoked["version"] == 3 and revoked["dropped"] == 2

    async def refused_and_resigned() -> bool:  # every API process gets there within its cache time
        if (await api.get("/api/v1/entries", headers=bearer(before))).status_code != 401:
            return False
        token = await mint_token(api, tenant.api_key, "jdoe")
        kid = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]
        return kid.endswith(".3") and (await api.get("/api/v1/entries", headers=bearer(token))).status_code == 200

    await wait_until(refused_and_resigned, timeout=20)
    bad = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "app.cli", "rotate-user-token-key",
                                                   "--tenant", "nope"], env=dict(os.environ), capture_output=True,
                                  text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --tenant: not a tenant id"


# -- what a user token may see and change -------------------------------------------------------------------------

@dataclass
class TwoUsers:
    jira: Jira
    conflicts: dict[str, dict[str, Any]]  # user → their open conflict


@pytest.fixture
async def two_users(api: Any, api_without_window: Any, pusher: Any, make_jira: Any, connect_user: Any,
                    tenant: Any) -> TwoUsers:
    jira: Jira = await make_jira(tenant, connected=False)
    conflicts = {}
    for user, entry_id in (("alice", "a1"), ("bob", "b1")):
        assert await connect_user(jira.setup, user, jira_user=user) == "connected"
        worklog = await synced_entry(api, pusher, jira, entry_id=entry_id, user=user,
                                     description=f"{user}'s secret work")
        edited = jira.remote_edit(worklog["id"], time_spent_seconds=7200)
        assert await outcome(api_without_window, jira, edited) == "jira_wins"
        r = await api.get(f"/api/v1/conflicts?entry_id={entry_id}", headers=jira.headers)
        conflicts[user] = r.json()[0]
    r = await api.put("/api/v1/entries/b2", json={**ENTRY, "user": "bob", "ticket": "PROJ-1"}, headers=jira.headers)
    assert r.status_code == 202
    return TwoUsers(jira, conflicts)


async def test_a_user_token_reads_only_its_users_data(api: Any, two_users: TwoUsers, tenant: Any) -> None:
    bob = bearer(await mint_token(api, tenant.api_key, "bob"))
    entries = (await api.get("/api/v1/entries", headers=bob)).json()["items"]
    assert sorted(e["id"] for e in entries) == ["b1", "b2"]
    assert (await api.get("/api/v1/entries?status=conflict", headers=bob)).json()["items"][0]["id"] == "b1"
    assert (await api.get("/api/v1/entries?user=bob", headers=bob)).status_code == 200
    r = await api.get("/api/v1/entries?user=alice", headers=bob)
    assert r.status_code == 403 and "user" in r.json()["detail"]
    assert (await api.get("/api/v1/entries/a1", headers=bob)).status_code == 404
    assert (await api.get("/api/v1/entries/b1", headers=bob)).json()["user"] == "bob"

    conflicts = (await api.get("/api/v1/conflicts", headers=bob)).json()
    assert [c["entry_id"] for c in conflicts] == ["b1"]
    assert (await api.get(f"/api/v1/conflicts/{two_users.conflicts['alice']['id']}", headers=bob)).status_code == 404
    notes = (await api.get("/api/v1/notifications", headers=bob)).json()
    assert notes and {n["user"] for n in notes} == {"bob"}
    assert (await api.get("/api/v1/notifications?user=alice", headers=bob)).status_code == 403
    alice_notes = (await api.get("/api/v1/notifications?user=alice", headers=two_users.jira.headers)).json()
    r = await api.post(f"/api/v1/notifications/{alice_notes[0]['id']}/read", headers=bob)
    assert r.status_code == 404
    assert (await api.post(f"/api/v1/notifications/{notes[0]['id']}/read", headers=bob)).status_code == 200

    feed = (await api.get("/api/v1/changes?limit=1000", headers=bob)).json()["items"]
    assert feed and {i["entry"]["user"] for i in feed} == {"bob"} and {i["entry_id"] for i in feed} == {"b1", "b2"}
    everything = (await api.get("/api/v1/changes?limit=1000", headers=two_users.jira.headers)).json()["items"]
    assert {i["entry_id"] for i in everything} >= {"a1", "b1", "b2"}

    connections = (await api.get("/api/v1/users/bob/connections", headers=bob)).json()
    assert [c["status"] for c in connections] == ["connected"]
    assert (await api.get("/api/v1/users/alice/connections", headers=bob)).status_code == 403
    me = (await api.get("/api/v1/me", headers=bob)).json()
    assert [i["id"] for i in me["jira_instances"]] == [str(two_users.jira.id)]
    assert "alice" not in json.dumps([entries, conflicts, notes, feed, connections, me])


async def test_a_user_token_changes_only_its_users_entries(api: Any, two_users: TwoUsers, tenant: Any) -> None:
    bob = bearer(await mint_token(api, tenant.api_key, "bob"))
    admin = two_users.jira.headers
    r = await api.put("/api/v1/entries/b3", json={**ENTRY, "user": "alice"}, headers=bob)
    assert r.status_code == 403 and r.json()["detail"].startswith("user:")
    assert (await api.get("/api/v1/entries/b3", headers=admin)).status_code == 404  # nothing stored
    r = await api.put("/api/v1/entries/a1", json={**ENTRY, "user": "bob"}, headers=bob)  # alice's entry: not found
    assert r.status_code == 404
    assert (await api.get("/api/v1/entries/a1", headers=admin)).json()["user"] == "alice"
    assert (await api.delete("/api/v1/entries/a1", headers=bob)).status_code == 404
    assert (await api.post("/api/v1/entries/a1/retry", headers=bob)).status_code == 404
    assert (await api.get("/api/v1/entries/a1", headers=admin)).json()["sync"]["status"] == "conflict"

    r = await api.put("/api/v1/entries/b3", json={**ENTRY, "user": "bob"}, headers=bob)
    assert r.status_code == 202 and r.json()["user"] == "bob"
    r = await api.post("/api/v1/entries/batch", headers=bob, json={"entries": [
        {**ENTRY, "id": "b4", "user": "bob"}, {**ENTRY, "id": "a9", "user": "alice"}]})
    assert r.status_code == 403 and "entries[1].user" in r.json()["detail"]
    assert (await api.get("/api/v1/entries/b4", headers=admin)).status_code == 404  # the whole batch refused
    r = await api.post("/api/v1/entries/batch", headers=bob, json={"entries": [
        {**ENTRY, "id": "b4", "user": "bob"}, {**ENTRY, "id": "a1", "user": "bob"}]})
    assert r.status_code == 202
    assert [(x["id"], x["status"]) for x in r.json()["results"]] == [("b4", "accepted"), ("a1", "rejected")]
    assert r.json()["results"][1]["error"] == "entry a1 not found"
    assert (await api.get("/api/v1/entries/a1", headers=admin)).json()["user"] == "alice"
    assert (await api.delete("/api/v1/entries/b4", headers=bob)).status_code == 202

    alice_conflict, bob_conflict = two_users.conflicts["alice"], two_users.conflicts["bob"]
    r = await api.post(f"/api/v1/conflicts/{alice_conflict['id']}/resolve", json={"winner": "jira"}, headers=bob)
    assert r.status_code == 404
    r = await api.post(f"/api/v1/conflicts/{bob_conflict['id']}/resolve", json={"winner": "jira"}, headers=bob)
    assert r.status_code == 200 and r.json()["entry"]["duration"] == 120
    open_ = (await api.get("/api/v1/conflicts?status=open", headers=admin)).json()
    assert [c["entry_id"] for c in open_] == ["a1"]


async def test_a_user_token_connects_and_looks_up_tickets_only_as_its_user(api: Any, two_users: TwoUsers,
                                                                          tenant: Any) -> None:
    bob = bearer(await mint_token(api, tenant.api_key, "bob"))
    instance = two_users.jira.id
    start = f"/api/v1/jira-instances/{instance}/oauth/start"
    r = await api.post(start, json={"user": "alice"}, headers=bob)
    assert r.status_code == 403
    r = await api.post(start, json={"user": "bob", "return_url": "http://127.0.0.1:8000/dashboard"}, headers=bob)
    assert r.status_code == 200 and "oauth_token=" in r.json()["authorize_url"]
    r = await api.get(f"/api/v1/jira-instances/{instance}/tickets/PROJ-1", headers=bob)  # bob's connection
    assert r.status_code == 200 and r.json()["key"] == "PROJ-1"
    r = await api.get(f"/api/v1/jira-instances/{instance}/tickets/PROJ-1?user=alice", headers=bob)
    assert r.status_code == 403
    r = await api.get(f"/api/v1/jira-instances/{instance}/tickets/PROJ-1", headers=two_users.jira.headers)
    assert r.status_code == 422 and r.json()["detail"].startswith("user:")  # the API key names whose connection
    pat = {"personal_access_token": "a-token-of-someone"}
    r = await api.put(f"/api/v1/users/alice/connections/{instance}", json=pat, headers=bob)
    assert r.status_code == 403  # storing a personal access token for another user
    r = await api.put(f"/api/v1/users/bob/connections/{instance}", json=pat, headers=bob)
    assert r.status_code == 409  # for themselves it gets through (this instance takes no tokens: OAuth 1.0a)
    assert (await api.delete(f"/api/v1/users/alice/connections/{instance}", headers=bob)).status_code == 403
    assert (await api.delete(f"/api/v1/users/bob/connections/{instance}", headers=bob)).status_code == 204
    connections = (await api.get("/api/v1/users/alice/connections", headers=two_users.jira.headers)).json()
    assert [c["status"] for c in connections] == ["connected"]
