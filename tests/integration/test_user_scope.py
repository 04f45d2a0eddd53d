"""Every route's scope (CONTRACT 14), read from the OpenAPI document the API serves: each `/api/v1` operation is
either tenant administration (the API key only: a user token gets 403) or acts for a user (a user token too, on its
own user's data). A new route fails here until it is classified below — on purpose: deciding who may call it is
part of adding it."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

SCOPES: dict[tuple[str, str], str] = {
    ("put", "/api/v1/entries/{entry_id}"): "user",
    ("get", "/api/v1/entries/{entry_id}"): "user",
    ("delete", "/api/v1/entries/{entry_id}"): "user",
    ("get", "/api/v1/entries"): "user",
    ("post", "/api/v1/entries/batch"): "user",
    ("post", "/api/v1/entries/{entry_id}/retry"): "user",
    ("get", "/api/v1/jira-instances"): "tenant",
    ("post", "/api/v1/jira-instances"): "tenant",
    ("get", "/api/v1/jira-instances/{instance_id}"): "tenant",
    ("patch", "/api/v1/jira-instances/{instance_id}"): "tenant",
    ("delete", "/api/v1/jira-instances/{instance_id}"): "tenant",
    ("post", "/api/v1/jira-instances/{instance_id}/webhook-secret"): "tenant",
    ("post", "/api/v1/jira-instances/{instance_id}/oauth/start"): "user",
    ("get", "/api/v1/users/{user}/connections"): "user",
    ("put", "/api/v1/users/{user}/connections/{instance_id}"): "user",
    ("delete", "/api/v1/users/{user}/connections/{instance_id}"): "user",
    ("get", "/api/v1/jira-instances/{instance_id}/tickets/{key}"): "user",
    ("get", "/api/v1/jira-instances/{instance_id}/tickets/{key}/subtickets"): "user",
    ("get", "/api/v1/conflicts"): "user",
    ("get", "/api/v1/conflicts/{conflict_id}"): "user",
    ("post", "/api/v1/conflicts/{conflict_id}/resolve"): "user",
    ("get", "/api/v1/notifications"): "user",
    ("post", "/api/v1/notifications/{notification_id}/read"): "user",
    ("get", "/api/v1/changes"): "user",
    ("get", "/api/v1/audit"): "tenant",
    ("get", "/api/v1/stats"): "tenant",
    ("get", "/api/v1/stats/history"): "tenant",
    ("get", "/api/v1/tenant"): "tenant",
    ("patch", "/api/v1/tenant"): "tenant",
    ("post", "/api/v1/user-tokens"): "tenant",
    ("delete", "/api/v1/user-tokens"): "tenant",
    ("get", "/api/v1/me"): "user",
}
# reached without a bearer credential: health, metrics (its own token), webhooks (signatures), OAuth callbacks
# (single-use state), the dashboard page (it asks for a credential itself)
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/webhooks/", "/oauth/", "/dashboard")


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): op for path, item in doc["paths"].items() for method, op in item.items()
            if isinstance(op, dict)}


async def test_every_route_is_classified(api: httpx.AsyncClient) -> None:
    operations = _operations((await api.get("/openapi.json")).json())
    served = {key: op.get("x-scope") for key, op in operations.items() if key[1].startswith("/api/v1/")}
    assert set(served) == set(SCOPES), ("classify these routes in SCOPES", set(served) ^ set(SCOPES))
    assert served == SCOPES
    for (method, path), op in operations.items():
        if not path.startswith("/api/v1/"):
            assert path.startswith(PUBLIC_PREFIXES), f"{method} {path}: which credential does it need?"
            assert op.get("x-scope") == "public", (method, path)


def _filled(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: str(uuid.uuid4()) if "id" in m.group(0) else "PROJ-1", path)


async def test_every_tenant_administration_route_answers_403_to_a_user_token(api: httpx.AsyncClient,
                                                                             tenant: Any) -> None:
    r = await api.post("/api/v1/user-tokens", json={"user": "jdoe"},
                       headers={"Authorization": f"Bearer {tenant.api_key}"})
    token = {"Authorization": f"Bearer {r.json()['token']}"}
    admin = [key for key, scope in SCOPES.items() if scope == "tenant"]
    assert len(admin) >= 10
    for method, path in admin:
        # no body, made-up ids: the 403 comes before anything of the request is looked at
        r = await api.request(method.upper(), _filled(path), headers=token)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert "API key" in r.json()["detail"]
    # and the same requests with the API key get past that check (whatever they answer then)
    for method, path in admin:
        r = await api.request(method.upper(), _filled(path), headers={"Authorization": f"Bearer {tenant.api_key}"})
        assert r.status_code != 403, (method, path)


async def test_every_route_refuses_a_missing_expired_or_forged_credential(api: httpx.AsyncClient) -> None:
    for method, path in SCOPES:
        for headers in ({}, {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.AAAA"}):
            r = await api.request(method.upper(), _filled(path), headers=headers)
            assert r.status_code == 401, (method, path, r.text)
