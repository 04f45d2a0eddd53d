"""An instance's `auth` (CONTRACT 13): what each kind needs and refuses, what it shows, and what a change of kind
does to the users' connections (CONTRACT 11: a new JIRA link disconnects them)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db.models import JiraInstanceRow, NotificationRow

BASE = "/api/v1/jira-instances"
SECRET = "client-secret-value-4711"


def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": f"JIRA {uuid.uuid4().hex[:6]}", "base_url": "https://jira.example.com/jira",
                            "project_keys": ["PROJ"]}
    data.update(overrides)
    return data


def problems(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 422, r.text
    return {item["loc"][-1]: item["msg"] for item in r.json()["detail"]}


async def row_of(app: Any, instance_id: str) -> JiraInstanceRow:
    async with app.state.sessionmaker() as session:
        row = await session.get(JiraInstanceRow, uuid.UUID(instance_id))
        assert row is not None
        return row


async def test_oauth1_is_the_default_with_a_key_pair(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    r = await api.post(BASE, json=body(), headers=auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["auth"] == "oauth1" and created["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert created["client_id"] is None and created["redirect_uri"] is None


async def test_a_pat_instance_needs_neither_keys_nor_secrets(api: httpx.AsyncClient, app: Any,
                                                            auth: dict[str, str]) -> None:
    r = await api.post(BASE, json=body(auth="pat"), headers=auth)
    assert r.status_code == 201, r.text
    assert r.json()["auth"] == "pat" and r.json()["public_key_pem"] is None
    row = await row_of(app, r.json()["id"])
    assert row.private_key_enc is None and row.oauth2_client_secret_enc is None
    r = await api.post(BASE, json=body(auth="pat", private_key_pem=None, client_id=None), headers=auth)
    assert r.status_code == 201, r.text  # nulls are no values


async def test_an_oauth2_instance_keeps_its_client_secret_sealed_and_never_shows_it(
    api: httpx.AsyncClient, app: Any, auth: dict[str, str], settings: Any,
) -> None:
    r = await api.post(BASE, json=body(auth="oauth2", client_id="tt-client", client_secret=SECRET), headers=auth)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["auth"] == "oauth2" and created["client_id"] == "tt-client" and created["public_key_pem"] is None
    assert created["redirect_uri"] == settings.public_base_url.rstrip("/") + "/oauth/jira2/callback"
    for answer in (r, await api.get(f"{BASE}/{created['id']}", headers=auth), await api.get(BASE, headers=auth)):
        assert SECRET not in answer.text
    row = await row_of(app, created["id"])
    assert row.oauth2_client_secret_enc is not None and SECRET.encode() not in row.oauth2_client_secret_enc
    assert row.private_key_enc is None


@pytest.mark.parametrize("extra, wanted", [
    ({"auth": "oauth2"}, {"client_id", "client_secret"}),
    ({"auth": "oauth2", "client_id": "c"}, {"client_secret"}),
    ({"auth": "oauth2", "client_secret": SECRET, "client_id": "c", "private_key_pem": "x"}, {"private_key_pem"}),
    ({"auth": "pat", "client_secret": SECRET}, {"client_secret"}),
    ({"auth": "oauth1", "client_id": "c", "client_secret": SECRET}, {"client_id", "client_secret"}),
    ({"auth": "basic"}, {"auth"}),
])
async def test_fields_that_do_not_fit_the_kind_are_422_naming_them(
    api: httpx.AsyncClient, app: Any, auth: dict[str, str], tenant: Any, extra: dict[str, Any], wanted: set[str],
) -> None:
    r = await api.post(BASE, json=body(**extra), headers=auth)
    found = problems(r)
    assert set(found) == wanted, found
    assert SECRET not in r.text  # never echoed
    assert (await api.get(BASE, headers=auth)).json() == []  # nothing stored


async def test_patch_between_kinds_checks_what_the_new_kind_needs(api: httpx.AsyncClient, app: Any,
                                                                 auth: dict[str, str]) -> None:
    instance = (await api.post(BASE, json=body(auth="pat"), headers=auth)).json()
    url = f"{BASE}/{instance['id']}"
    assert set(problems(await api.patch(url, json={"auth": "oauth2"}, headers=auth))) == {"client_id",
                                                                                          "client_secret"}
    assert set(problems(await api.patch(url, json={"client_secret": SECRET}, headers=auth))) == {"client_secret"}
    assert (await api.get(url, headers=auth)).json()["auth"] == "pat"  # nothing changed

    r = await api.patch(url, json={"auth": "oauth2", "client_id": "tt", "client_secret": SECRET}, headers=auth)
    assert r.status_code == 200 and r.json()["auth"] == "oauth2" and SECRET not in r.text
    r = await api.patch(url, json={"auth": "oauth1"}, headers=auth)  # a key pair is made for it
    assert r.status_code == 200 and r.json()["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    public = r.json()["public_key_pem"]
    r = await api.patch(url, json={"auth": "oauth2"}, headers=auth)  # the client stayed stored
    assert r.status_code == 200 and r.json()["client_id"] == "tt"
    r = await api.patch(url, json={"auth": "oauth1"}, headers=auth)  # and so did the key pair
    assert r.json()["public_key_pem"] == public


async def _notifications(app: Any, tenant_id: Any, instance_id: str) -> list[tuple[str, str]]:
    async with app.state.sessionmaker() as session:
        notes = (await session.execute(select(NotificationRow).where(
            NotificationRow.tenant_id == tenant_id,
            NotificationRow.jira_instance_id == uuid.UUID(instance_id)))).scalars()
        return sorted((n.user, n.message) for n in notes)


async def _statuses(api: httpx.AsyncClient, setup: Any, *users: str) -> list[str]:
    found = []
    for user in users:
        rows = (await api.get(f"/api/v1/users/{user}/connections", headers=setup.headers)).json()
        found += [c["status"] for c in rows if c["jira_instance"] == setup.instance_id]
    return found


@pytest.mark.parametrize("start, change", [
    ("oauth1", {"auth": "pat"}),
    ("pat", {"auth": "oauth1"}),
    ("pat", {"base_url": "moved"}),
    ("oauth2", {"client_id": "another-link"}),
])
async def test_a_new_jira_link_disconnects_every_user(api: httpx.AsyncClient, app: Any, jira_setup: Any,
                                                      connect_user: Any, start: str, change: dict[str, Any]) -> None:
    setup = await jira_setup(auth=start)
    for user, jira_user in (("ann", "alice"), ("ben", "bob")):
        assert await connect_user(setup, user, jira_user=jira_user) == "connected"
    if change.get("base_url") == "moved":
        change = {"base_url": setup.base_url + "-moved"}
    r = await api.patch(f"/api/v1/jira-instances/{setup.instance_id}", json=change, headers=setup.headers)
    assert r.status_code == 200, r.text
    assert await _statuses(api, setup, "ann", "ben") == ["auth_required", "auth_required"]
    notes = await _notifications(app, setup.tenant.tenant_id, setup.instance_id)
    assert [user for user, _ in notes] == ["ann", "ben"] and all("connect" in message for _, message in notes)


@pytest.mark.parametrize("start, change", [
    ("oauth2", {"client_secret": "rotated-secret"}),
    ("pat", {"consumer_key": "not-used-by-pat", "rate_limit_per_second": 5}),
    ("oauth2", {"auth": "oauth2", "name": "renamed"}),
])
async def test_what_is_not_a_new_link_leaves_the_users_connected(
    api: httpx.AsyncClient, app: Any, jira_setup: Any, connect_user: Any, start: str, change: dict[str, Any],
) -> None:
    setup = await jira_setup(auth=start)
    assert await connect_user(setup, "ann", jira_user="alice") == "connected"
    r = await api.patch(f"/api/v1/jira-instances/{setup.instance_id}", json=change, headers=setup.headers)
    assert r.status_code == 200, r.text
    assert await _statuses(api, setup, "ann") == ["connected"]
    assert await _notifications(app, setup.tenant.tenant_id, setup.instance_id) == []
