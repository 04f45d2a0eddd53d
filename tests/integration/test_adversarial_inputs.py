"""Hostile and odd inputs: oversized and malformed bodies, CR/LF injection, unicode, very long texts, SQL
meta-characters in every string field. Never a 5xx, never half-stored: a refused change leaves no trace."""

from __future__ import annotations

import json

import pytest

from app.domain.worklog import MAX_COMMENT_CHARS, build_comment
from app.observability import RequestIdMiddleware
from tests.integration.ops_data import add_instance, entry_body

SQL_META = [
    "'; DROP TABLE entries; --",
    "\" OR \"1\"=\"1",
    "1' OR '1'='1' /*",
    "%_\\%",
    "$1; SELECT pg_sleep(5)",
    "`backtick` ;; \\\\ \\' ",
    "Robert'); DELETE FROM tenants;--",
]
UNICODE = [
    "Ünïcödé – naïve café ☕",
    "日本語のテキスト",
    "עברית RTL \u202e override",
    "emoji 😀👩‍👩‍👧‍👦🏳️‍🌈",
    "combining e\u0301 and zero\u200bwidth",
    "\U0010fffd private plane",
]


async def _count(app, tenant_id) -> int:
    from sqlalchemy import func, select

    from app.db.models import EntryRow

    async with app.state.sessionmaker() as session:
        return int((await session.execute(
            select(func.count()).select_from(EntryRow).where(EntryRow.tenant_id == tenant_id))).scalar_one())


def _no_5xx(r) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code < 500, f"{r.request.method} {r.request.url} → {r.status_code}: {r.text[:300]}"


@pytest.mark.parametrize("raw, content_type", [
    (b"", "application/json"),
    (b"{", "application/json"),
    (b"null", "application/json"),
    (b"[]", "application/json"),
    (b'"just a string"', "application/json"),
    (b"\xff\xfe\x00garbage", "application/json"),
    (b'{"user": "jdoe"}', "application/json"),
    (b"user=jdoe&ticket=PROJ-1", "application/x-www-form-urlencoded"),
    (b'{"user": "jdoe", "ticket": "PROJ-1", "date": "2026-11-25", "start": "09:00", "duration": 1e400}',
     "application/json"),
    (b'{"user": "jdoe", "ticket": "PROJ-1", "date": "2026-11-25", "start": "09:00", "duration": '
     + b"9" * 5000 + b"}", "application/json"),
    (b"[" * 5000 + b"]" * 5000, "application/json"),
])
async def test_malformed_bodies_are_refused_and_store_nothing(api, app, tenant, auth, raw, content_type):
    r = await api.put("/api/v1/entries/m1", content=raw, headers={**auth, "Content-Type": content_type})
    _no_5xx(r)
    assert r.status_code in (400, 422), r.text
    assert "detail" in r.json()
    assert (await api.get("/api/v1/entries/m1", headers=auth)).status_code == 404
    r = await api.post("/api/v1/entries/batch", content=raw, headers={**auth, "Content-Type": content_type})
    _no_5xx(r)
    assert r.status_code in (400, 422)
    assert await _count(app, tenant.tenant_id) == 0


async def test_oversized_bodies(api, app, tenant, auth):
    huge = entry_body(description="x" * 2_000_000)
    r = await api.put("/api/v1/entries/big", json=huge, headers=auth)
    _no_5xx(r)
    assert r.status_code in (413, 422)
    too_many = {"entries": [{"id": str(i), **entry_body()} for i in range(1001)]}
    r = await api.post("/api/v1/entries/batch", json=too_many, headers=auth)
    _no_5xx(r)
    assert r.status_code in (413, 422)
    r = await api.post(f"/webhooks/timetracker/{tenant.tenant_id}", content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                       headers={"Content-Type": "application/json", "X-TimeTracker-Signature": "t=1,v1=00",
                                "X-TimeTracker-Delivery": "d-big"})
    assert r.status_code == 413
    assert await _count(app, tenant.tenant_id) == 0


@pytest.mark.parametrize("field", ["user", "activity", "jira_instance"])
@pytest.mark.parametrize("evil", ["jdoe\r\nX-Injected: 1", "jdoe\nSet-Cookie: a=b", "jdoe\r", "a\x00b", "a\x1bb"])
async def test_line_breaks_and_control_characters_in_single_line_fields_are_refused(api, app, tenant, auth, field,
                                                                                    evil):
    r = await api.put("/api/v1/entries/h1", json=entry_body(**{field: evil}), headers=auth)
    assert r.status_code == 422, r.text
    assert field in r.text
    assert "X-Injected" not in r.headers and "set-cookie" not in r.headers
    assert await _count(app, tenant.tenant_id) == 0


async def test_multiline_description_is_kept_and_never_reaches_a_header(api, auth):
    text = "line one\r\nX-Injected: yes\r\n\r\n<script>alert(1)</script>"
    r = await api.put("/api/v1/entries/ml1", json=entry_body(description=text), headers=auth)
    assert r.status_code == 202, r.text
    assert "x-injected" not in r.headers
    got = (await api.get("/api/v1/entries/ml1", headers=auth)).json()
    assert got["description"] == text


async def test_crlf_in_ids_paths_and_request_ids(api, auth):
    for path in ("/api/v1/entries/a%0D%0AX-Injected:%201", "/api/v1/entries/a%00b", "/api/v1/entries/..%2F..%2Fetc"):
        r = await api.get(path, headers=auth)
        _no_5xx(r)
        assert r.status_code in (404, 422)
        assert "x-injected" not in r.headers

    # a CR/LF request id (a proxy may pass one through) is replaced, never echoed into our response headers
    sent: list[dict] = []

    async def inner(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def capture(message):  # type: ignore[no-untyped-def]
        sent.append(message)

    scope = {"type": "http", "headers": [(b"x-request-id", b"abc\r\nSet-Cookie: x=1")]}
    await RequestIdMiddleware(inner)(scope, None, capture)
    (_, value), = [h for h in sent[0]["headers"] if h[0] == b"x-request-id"]
    assert b"\r" not in value and b"\n" not in value and b"Set-Cookie" not in value


@pytest.mark.parametrize("text", UNICODE)
async def test_unicode_round_trips(api, auth, text):
    body = entry_body(description=text, activity=text.replace("\u202e", ""), user=f"u-{text[:20]}")
    r = await api.put("/api/v1/entries/u1", json=body, headers=auth)
    assert r.status_code == 202, r.text
    got = (await api.get("/api/v1/entries/u1", headers=auth)).json()
    assert got["description"] == text
    assert got["user"] == body["user"]
    listed = (await api.get("/api/v1/entries", params={"user": body["user"]}, headers=auth)).json()
    assert [e["id"] for e in listed["items"]] == ["u1"]


async def test_very_long_descriptions_are_stored_whole_and_fit_jiras_comment_limit(api, auth):
    for i, text in enumerate(["x" * 100_000, "😀" * 50_000, "a" + "👩‍👩‍👧" * 10_000]):
        r = await api.put(f"/api/v1/entries/long{i}", json=entry_body(description=text), headers=auth)
        assert r.status_code == 202, r.text[:300]
        got = (await api.get(f"/api/v1/entries/long{i}", headers=auth)).json()
        assert got["description"] == text  # TimeTracker's text is ours to keep whole
        comment = build_comment(f"long{i}", "Development", text)
        # JIRA counts UTF-16 code units; a cut never splits a surrogate pair (the result must encode)
        assert len(comment.encode("utf-16-le")) // 2 <= MAX_COMMENT_CHARS
        comment.encode("utf-8")
        assert comment.startswith(f"#long{i}: Development: ") and comment.endswith("…")
    r = await api.put("/api/v1/entries/toolong", json=entry_body(description="x" * 100_001), headers=auth)
    assert r.status_code == 422 and "description" in r.text


async def test_sql_meta_characters_in_every_string_field(api, app, make_tenant):
    victim = await make_tenant("Victim")
    vauth = {"Authorization": f"Bearer {victim.api_key}"}
    assert (await api.put("/api/v1/entries/keep", json=entry_body(), headers=vauth)).status_code == 202
    t = await make_tenant("Attacker")
    auth = {"Authorization": f"Bearer {t.api_key}"}
    await add_instance(api, t, name="Main JIRA")
    stored = 0
    for i, evil in enumerate(SQL_META):
        entry_id = f"sql{i}"
        body = entry_body(user=evil, description=evil, activity=evil)
        r = await api.put(f"/api/v1/entries/{entry_id}", json=body, headers=auth)
        assert r.status_code == 202, r.text
        stored += 1
        got = (await api.get(f"/api/v1/entries/{entry_id}", headers=auth)).json()
        assert (got["user"], got["description"], got["activity"]) == (evil, evil, evil)
        # fields that must name something known are refused, not interpreted
        for field in ("ticket", "timezone", "jira_instance", "date", "start", "updated_at"):
            r = await api.put(f"/api/v1/entries/{entry_id}-x", json=entry_body(**{field: evil}), headers=auth)
            assert r.status_code == 422, (field, r.text)
        # ids, query parameters and cursors
        from urllib.parse import quote

        for path in (f"/api/v1/entries/{quote(evil, safe='')}", f"/api/v1/entries/{quote(evil, safe='')}/retry"):
            _no_5xx(await api.get(path, headers=auth))
            _no_5xx(await api.post(path, headers=auth))
            _no_5xx(await api.delete(path, headers=auth))
        for params in ({"user": evil}, {"ticket": evil}, {"status": evil}, {"cursor": evil}):
            r = await api.get("/api/v1/entries", params=params, headers=auth)
            _no_5xx(r)
            if "user" in params:
                assert [e["id"] for e in r.json()["items"]] == [entry_id]
        for path, params in (("/api/v1/audit", {"entry_id": evil}), ("/api/v1/notifications", {"user": evil}),
                             ("/api/v1/conflicts", {"status": evil}), ("/api/v1/changes", {"after": evil})):
            _no_5xx(await api.get(path, params=params, headers=auth))
        r = await api.post("/api/v1/jira-instances", headers=auth,
                           json={"name": evil, "base_url": f"http://127.0.0.1:9/{quote(evil)}",
                                 "consumer_key": evil, "project_keys": [evil]})
        _no_5xx(r)
        r = await api.post("/api/v1/entries/batch", headers=auth,
                           json={"entries": [{"id": evil, **entry_body()}, {"id": f"b{i}", **entry_body(user=evil)}]})
        assert r.status_code == 202, r.text
        results = r.json()["results"]
        assert results[0]["status"] == "rejected" and results[1]["status"] == "accepted"
        stored += 1
    assert await _count(app, t.tenant_id) == stored
    # the other tenant's data is untouched
    got = await api.get("/api/v1/entries/keep", headers=vauth)
    assert got.status_code == 200 and got.json()["user"] == "jdoe"


async def test_nul_characters_are_refused_everywhere(api, app, tenant, auth):
    r = await api.put("/api/v1/entries/n1", json=entry_body(description="a\x00b"), headers=auth)
    assert r.status_code == 422
    for path, params in (("/api/v1/entries", {"user": "a\x00b"}), ("/api/v1/audit", {"entry_id": "a\x00b"}),
                         ("/api/v1/notifications", {"user": "a\x00b"})):
        r = await api.get(path, params=params, headers=auth)
        _no_5xx(r)
    assert await _count(app, tenant.tenant_id) == 0


async def test_wrong_types_and_extreme_numbers(api, app, tenant, auth):
    cases = [
        {"duration": -1}, {"duration": 10**30}, {"duration": 1.5}, {"duration": "90"[::-1] + "x"}, {"duration": None},
        {"date": "2026-02-30"}, {"date": "99999-01-01"}, {"start": "25:00"}, {"start": "09:00+01:00"},
        {"user": ""}, {"user": "x" * 201}, {"ticket": "PROJ-0"}, {"ticket": "x" * 65}, {"timezone": "Mars/Olympus"},
        {"updated_at": "not a time"}, {"user": ["jdoe"]}, {"description": {"a": 1}},
    ]
    for patch in cases:
        r = await api.put("/api/v1/entries/w1", json=entry_body(**patch), headers=auth)
        _no_5xx(r)
        assert r.status_code == 422, (patch, r.status_code, r.text)
        detail = r.json()["detail"]
        assert json.dumps(detail)  # a body TimeTracker can read
    assert await _count(app, tenant.tenant_id) == 0
