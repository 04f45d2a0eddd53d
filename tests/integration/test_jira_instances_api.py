"""JIRA instances API (CONTRACT section 3): key pairs, validation, secrets shown once, routing after changes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

BASE = "/api/v1/jira-instances"


def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": f"Main JIRA {uuid.uuid4().hex[:6]}", "base_url": "https://jira.example.com/jira",
                            "consumer_key": "timetracker", "project_keys": ["PROJ", "OPS"]}
    data.update(overrides)
    return data


def entry(ticket: str, **overrides: Any) -> dict[str, Any]:
    data = {"user": "jdoe", "ticket": ticket, "date": "2026-11-25", "start": "09:00", "duration": 30}
    data.update(overrides)
    return data


def field_errors(r: httpx.Response) -> str:
    return str(r.json()["detail"])


async def test_create_generates_a_key_pair_and_shows_the_webhook_secret_once(
    api: httpx.AsyncClient, auth: dict[str, str], app: Any, tenant: Any,
) -> None:
    r = await api.post(BASE, json=body(name="Main JIRA", private_key_pem=None), headers=auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) >= {"id", "name", "base_url", "consumer_key", "rate_limit_per_second", "project_keys",
                            "public_key_pem", "webhook_secret", "created_at"}
    assert created["rate_limit_per_second"] == 10
    assert created["project_keys"] == ["PROJ", "OPS"]
    assert created["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert created["webhook_secret"].startswith("whsec_")
    assert "private_key_pem" not in created and "PRIVATE KEY" not in r.text
    public = serialization.load_pem_public_key(created["public_key_pem"].encode())
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size >= 2048

    for answer in (await api.get(f"{BASE}/{created['id']}", headers=auth), await api.get(BASE, headers=auth)):
        assert answer.status_code == 200
        assert created["webhook_secret"] not in answer.text and "webhook_secret" not in answer.text
        assert "PRIVATE KEY" not in answer.text

    # stored sealed, and it opens to the key whose public half we returned
    from app.db.repositories import jira as jira_repo
    from app.services.credentials import instance_webhook_secret, private_key_pem

    async with app.state.sessionmaker() as session:
        row = await jira_repo.get_instance(session, tenant.tenant_id, uuid.UUID(created["id"]))
    assert row is not None and b"PRIVATE KEY" not in row.private_key_enc
    private = serialization.load_pem_private_key(private_key_pem(app.state.secret_box, row), None)
    assert private.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]
    assert instance_webhook_secret(app.state.secret_box, row) == created["webhook_secret"]


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
async def test_an_existing_key_can_be_imported(api: httpx.AsyncClient, auth: dict[str, str],
                                               fmt: serialization.PrivateFormat) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()
    r = await api.post(BASE, json=body(private_key_pem=pem), headers=auth)
    assert r.status_code == 201, r.text
    expected = key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert r.json()["public_key_pem"] == expected


@pytest.mark.parametrize(
    "pem",
    [
        "not a key",
        "-----BEGIN PRIVATE KEY-----\nZm9v\n-----END PRIVATE KEY-----\n",
        rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
    ],
)
async def test_bad_or_small_keys_are_422_naming_private_key_pem(api: httpx.AsyncClient, auth: dict[str, str],
                                                                 pem: str) -> None:
    r = await api.post(BASE, json=body(private_key_pem=pem), headers=auth)
    assert r.status_code == 422
    assert "private_key_pem" in field_errors(r)
    assert "Zm9v" not in r.text and "MII" not in r.text  # the key is never echoed


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://jira.example.com/jira/", "https://jira.example.com/jira"),
        ("https://jira.example.com///", "https://jira.example.com"),
        ("HTTP://Jira.Example.com:8080/ctx/jira", "http://jira.example.com:8080/ctx/jira"),
        ("  https://jira.example.com  ", "https://jira.example.com"),
    ],
)
async def test_base_url_keeps_the_context_path_and_drops_trailing_slashes(
    api: httpx.AsyncClient, auth: dict[str, str], given: str, stored: str,
) -> None:
    r = await api.post(BASE, json=body(base_url=given), headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["base_url"] == stored


@pytest.mark.parametrize(
    "url",
    ["ftp://jira.example.com", "jira.example.com", "https://user:pw@jira.example.com", "https://jira.example.com/?a=1",
     "https://jira.example.com/#top", "https://", "https://jira.example.com:99999", "javascript:alert(1)",
     "https://jira example.com"],
)
async def test_bad_base_urls_are_422(api: httpx.AsyncClient, auth: dict[str, str], url: str) -> None:
    r = await api.post(BASE, json=body(base_url=url), headers=auth)
    assert r.status_code == 422, r.text
    assert "base_url" in field_errors(r)
    assert "pw@" not in r.text


async def test_project_keys_are_normalised_and_validated(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await api.post(BASE, json=body(project_keys=[" proj", "OPS", "ops", "A_1"]), headers=auth)
    assert r.status_code == 201
    assert r.json()["project_keys"] == ["PROJ", "OPS", "A_1"]
    for bad in (["PROJ-1"], ["1ABC"], [""], ["with space"]):
        r = await api.post(BASE, json=body(project_keys=bad), headers=auth)
        assert r.status_code == 422 and "project_keys" in field_errors(r), bad


async def test_a_422_never_echoes_the_private_key(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    for broken in ({"base_url": "https://jira.example.com"}, {**body(), "unknown": 1}, {**body(), "name": ""}):
        r = await api.post(BASE, json={**broken, "private_key_pem": pem}, headers=auth)
        assert r.status_code == 422
        assert "PRIVATE KEY" not in r.text and pem.splitlines()[1][:20] not in r.text


@pytest.mark.parametrize("rate", [0, 1001, -1])
async def test_rate_limit_bounds(api: httpx.AsyncClient, auth: dict[str, str], rate: int) -> None:
    r = await api.post(BASE, json=body(rate_limit_per_second=rate), headers=auth)
    assert r.status_code == 422 and "rate_limit_per_second" in field_errors(r)


async def test_names_are_unique_per_tenant(api: httpx.AsyncClient, auth: dict[str, str], make_tenant: Any) -> None:
    assert (await api.post(BASE, json=body(name="Same"), headers=auth)).status_code == 201
    r = await api.post(BASE, json=body(name="Same"), headers=auth)
    assert r.status_code == 409 and "Same" in r.json()["detail"]
    other = await make_tenant()
    r = await api.post(BASE, json=body(name="Same"), headers={"Authorization": f"Bearer {other.api_key}"})
    assert r.status_code == 201
    second = (await api.post(BASE, json=body(name="Second"), headers=auth)).json()
    r = await api.patch(f"{BASE}/{second['id']}", json={"name": "Same"}, headers=auth)
    assert r.status_code == 409


async def test_patch_changes_fields_and_keeps_the_rest(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    created = (await api.post(BASE, json=body(), headers=auth)).json()
    r = await api.patch(f"{BASE}/{created['id']}", headers=auth, json={
        "name": "Renamed", "base_url": "https://other.example.com/", "consumer_key": "tt2",
        "rate_limit_per_second": 3, "project_keys": ["new"]})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert (changed["name"], changed["base_url"], changed["consumer_key"], changed["rate_limit_per_second"],
            changed["project_keys"]) == ("Renamed", "https://other.example.com", "tt2", 3, ["NEW"])
    assert changed["public_key_pem"] == created["public_key_pem"]
    assert "webhook_secret" not in changed
    assert (await api.patch(f"{BASE}/{created['id']}", json={"rate_limit_per_second": 0},
                            headers=auth)).status_code == 422
    assert (await api.patch(f"{BASE}/{created['id']}", json={"private_key_pem": "x"},
                            headers=auth)).status_code == 422
    assert (await api.get(f"{BASE}/{created['id']}", headers=auth)).json()["rate_limit_per_second"] == 3


async def test_delete_and_other_tenants_see_404(api: httpx.AsyncClient, auth: dict[str, str],
                                                make_tenant: Any) -> None:
    created = (await api.post(BASE, json=body(), headers=auth)).json()
    other = {"Authorization": f"Bearer {(await make_tenant()).api_key}"}
    url = f"{BASE}/{created['id']}"
    assert (await api.get(url, headers=other)).status_code == 404
    assert (await api.patch(url, json={"name": "x"}, headers=other)).status_code == 404
    assert (await api.delete(url, headers=other)).status_code == 404
    assert created["id"] not in (await api.get(BASE, headers=other)).text
    assert (await api.delete(url, headers=auth)).status_code == 204
    assert (await api.get(url, headers=auth)).status_code == 404
    assert (await api.get(BASE, headers={})).status_code == 401


async def test_webhook_secret_can_be_rotated(api: httpx.AsyncClient, auth: dict[str, str], app: Any,
                                             tenant: Any) -> None:
    created = (await api.post(BASE, json=body(), headers=auth)).json()
    r = await api.post(f"{BASE}/{created['id']}/webhook-secret", headers=auth)
    assert r.status_code == 200
    fresh = r.json()["webhook_secret"]
    assert fresh.startswith("whsec_") and fresh != created["webhook_secret"]
    from app.db.repositories import jira as jira_repo
    from app.services.credentials import instance_webhook_secret

    async with app.state.sessionmaker() as session:
        row = await jira_repo.get_instance(session, tenant.tenant_id, uuid.UUID(created["id"]))
    assert row is not None and instance_webhook_secret(app.state.secret_box, row) == fresh


async def test_creating_or_changing_an_instance_routes_skipped_entries_again(
    api: httpx.AsyncClient, auth: dict[str, str],
) -> None:
    await api.put("/api/v1/entries/r1", json=entry("OPS-1"), headers=auth)
    await api.put("/api/v1/entries/r2", json=entry("NEW-1"), headers=auth)
    await api.put("/api/v1/entries/r3", json=entry("OPS-2", duration=0), headers=auth)
    for entry_id in ("r1", "r2"):
        sync = (await api.get(f"/api/v1/entries/{entry_id}", headers=auth)).json()["sync"]
        assert sync["status"] == "skipped" and "no JIRA instance" in sync["last_error"]

    created = (await api.post(BASE, json=body(project_keys=["OPS"]), headers=auth)).json()
    r1 = (await api.get("/api/v1/entries/r1", headers=auth)).json()["sync"]
    assert r1["status"] == "pending" and r1["jira_instance"] == created["id"]
    assert (await api.get("/api/v1/entries/r2", headers=auth)).json()["sync"]["status"] == "skipped"
    r3 = (await api.get("/api/v1/entries/r3", headers=auth)).json()["sync"]
    assert r3["status"] == "skipped" and "duration is 0" in r3["last_error"]

    await api.patch(f"{BASE}/{created['id']}", json={"project_keys": ["OPS", "NEW"]}, headers=auth)
    assert (await api.get("/api/v1/entries/r2", headers=auth)).json()["sync"]["status"] == "pending"


async def _feed(api: httpx.AsyncClient, auth: dict[str, str]) -> list[dict[str, Any]]:
    r = await api.get("/api/v1/changes?after=0&limit=1000", headers=auth)
    assert r.status_code == 200
    return list(r.json()["items"])


async def test_rerouted_entries_reach_the_changes_feed(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    """Creating or changing an instance reroutes skipped entries; their `skipped → pending` is a status change
    like any other, so a client rebuilding entries from GET /api/v1/changes must see it (issue 14)."""
    await api.put("/api/v1/entries/f1", json=entry("OPS-1"), headers=auth)
    await api.put("/api/v1/entries/f2", json=entry("NEW-1"), headers=auth)

    created = (await api.post(BASE, json=body(project_keys=["OPS"]), headers=auth)).json()
    latest = {i["entry_id"]: i["entry"] for i in await _feed(api, auth)}
    assert latest["f1"]["sync"]["status"] == "pending"
    assert latest["f1"] == (await api.get("/api/v1/entries/f1", headers=auth)).json()

    await api.patch(f"{BASE}/{created['id']}", json={"project_keys": ["OPS", "NEW"]}, headers=auth)
    latest = {i["entry_id"]: i["entry"] for i in await _feed(api, auth)}
    assert latest["f2"]["sync"]["status"] == "pending"
    assert latest["f2"] == (await api.get("/api/v1/entries/f2", headers=auth)).json()
