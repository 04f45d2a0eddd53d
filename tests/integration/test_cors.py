"""CORS for the TimeTracker frontend (CONTRACT 14): a user token's tenant's origins may read its answers, preflights
are answered for origins some tenant allows, other origins get no CORS headers; never `*`, never credentials.
(A real browser enforcing it: tests/e2e/test_frontend_browser.py.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import event

A, B, EVIL = "http://tt-a.example", "http://tt-b.example:8080", "http://evil.example"


@pytest.fixture
async def tenants(api: httpx.AsyncClient, make_tenant: Any) -> dict[str, Any]:
    made = {}
    for name, origin in (("a", A), ("b", B)):
        t = await make_tenant(f"CORS {name}")
        key = {"Authorization": f"Bearer {t.api_key}"}
        assert (await api.patch("/api/v1/tenant", json={"allowed_origins": [origin]}, headers=key)).status_code == 200
        token = (await api.post("/api/v1/user-tokens", json={"user": "jdoe"}, headers=key)).json()["token"]
        made[name] = {"key": key, "token": {"Authorization": f"Bearer {token}"}}
    return made


def _no_cors(r: httpx.Response) -> None:
    assert not any(h.startswith("access-control-") for h in r.headers), dict(r.headers)


def _never_wildcard_nor_credentials(r: httpx.Response) -> None:
    assert r.headers.get("access-control-allow-origin") != "*"
    assert "access-control-allow-credentials" not in r.headers


async def test_a_preflight_is_answered_for_an_allowed_origin_only(api: httpx.AsyncClient, tenants: Any) -> None:
    ask = {"Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization,content-type"}
    for origin in (A, B):
        r = await api.options("/api/v1/entries/4711", headers={"Origin": origin, **ask})
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == origin
        assert {"GET", "POST", "PUT", "DELETE"} <= {m.strip() for m in
                                                   r.headers["access-control-allow-methods"].split(",")}
        assert {"authorization", "content-type"} <= {h.strip() for h in
                                                     r.headers["access-control-allow-headers"].split(",")}
        assert int(r.headers["access-control-max-age"]) > 0 and "Origin" in r.headers["vary"]
        _never_wildcard_nor_credentials(r)
    for origin in (EVIL, "null", "http://tt-a.example.evil.example", "https://tt-a.example"):
        r = await api.options("/api/v1/entries/4711", headers={"Origin": origin, **ask})
        assert r.status_code == 403
        _no_cors(r)
    # only the API takes part
    r = await api.options("/dashboard", headers={"Origin": A, **ask})
    _no_cors(r)


async def test_answers_to_a_user_token_are_readable_by_its_tenants_origins_only(api: httpx.AsyncClient,
                                                                               tenants: Any) -> None:
    r = await api.get("/api/v1/entries", headers={"Origin": A, **tenants["a"]["token"]})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == A and "Origin" in r.headers["vary"]
    assert "retry-after" in r.headers["access-control-expose-headers"]
    _never_wildcard_nor_credentials(r)
    # an origin of another tenant, or of nobody: no CORS headers (the browser withholds the answer)
    for origin in (B, EVIL):
        r = await api.get("/api/v1/entries", headers={"Origin": origin, **tenants["a"]["token"]})
        assert r.status_code == 200 and "Origin" in r.headers["vary"]
        _no_cors(r)
    # the tenant-wide API key is never for a browser
    r = await api.get("/api/v1/entries", headers={"Origin": A, **tenants["a"]["key"]})
    assert r.status_code == 200
    _no_cors(r)
    # a 403 of a user token on tenant administration is readable: the page learns why
    r = await api.get("/api/v1/audit", headers={"Origin": A, **tenants["a"]["token"]})
    assert r.status_code == 403 and r.headers["access-control-allow-origin"] == A
    # no Origin (a server calling): nothing added
    r = await api.get("/api/v1/entries", headers=tenants["a"]["token"])
    _no_cors(r)
    assert "vary" not in r.headers


async def test_unidentified_answers_are_readable_by_allowed_origins(api: httpx.AsyncClient, tenants: Any) -> None:
    """A frontend must see its 401 (to fetch a new token) and a 413."""
    for headers in ({}, {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.AAAA"}):
        r = await api.get("/api/v1/entries", headers={"Origin": B, **headers})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == B
        r = await api.get("/api/v1/entries", headers={"Origin": EVIL, **headers})
        assert r.status_code == 401
        _no_cors(r)
    r = await api.put("/api/v1/entries/1", content=b"x" * (2 << 20),
                      headers={"Origin": A, "Content-Type": "application/json", **tenants["a"]["token"]})
    assert r.status_code == 413 and r.headers["access-control-allow-origin"] == A


async def test_a_changed_list_counts_at_once_in_this_process(api: httpx.AsyncClient, tenants: Any) -> None:
    new = "http://tt-new.example"
    ask = {"Origin": new, "Access-Control-Request-Method": "GET"}
    assert (await api.options("/api/v1/entries", headers=ask)).status_code == 403
    r = await api.patch("/api/v1/tenant", json={"allowed_origins": [A, new]}, headers=tenants["a"]["key"])
    assert r.status_code == 200
    assert (await api.options("/api/v1/entries", headers=ask)).status_code == 204
    r = await api.get("/api/v1/entries", headers={"Origin": new, **tenants["a"]["token"]})
    assert r.headers["access-control-allow-origin"] == new


async def test_origins_are_not_read_from_the_database_per_request(app: Any, api: httpx.AsyncClient,
                                                                  tenants: Any) -> None:
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    app.state.allowed_origins.clear()
    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for _ in range(20):
            await api.options("/api/v1/entries", headers={"Origin": A, "Access-Control-Request-Method": "GET"})
            await api.get("/api/v1/entries", headers={"Origin": EVIL})
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert sum("unnest" in s for s in statements) == 1, statements
    assert len(statements) == 1  # and nothing else: the 401s needed no query either
