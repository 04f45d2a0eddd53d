"""Entries API on real PostgreSQL (CONTRACT section 5)."""

from __future__ import annotations

import pytest

from tests.waiting import wait_until

ENTRY = {
    "user": "jdoe", "ticket": "PROJ-123", "date": "2026-11-25", "start": "09:00", "duration": 90,
    "timezone": "Europe/Berlin", "description": "Fix login", "activity": "Development",
    "updated_at": "2026-11-25T10:31:00Z",
}


async def put(api, auth, entry_id, **changes):
    return await api.put(f"/api/v1/entries/{entry_id}", json={**ENTRY, **changes}, headers=auth)


async def test_put_then_get_returns_the_entry_with_sync_state(api, auth):
    r = await put(api, auth, "4711")
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["id"] == "4711" and body["ticket"] == "PROJ-123" and body["start"] == "09:00"
    # no JIRA instance routes PROJ yet: nothing to push, and the reason is given
    assert body["sync"]["status"] == "skipped"
    assert "PROJ" in body["sync"]["last_error"]
    got = await api.get("/api/v1/entries/4711", headers=auth)
    assert got.status_code == 200 and got.json()["duration"] == 90


async def test_integer_ids_are_returned_as_strings(api, auth):
    r = await api.post("/api/v1/entries/batch", json={"entries": [{**ENTRY, "id": 99}]}, headers=auth)
    assert r.status_code == 202
    assert r.json()["results"][0] == {"id": "99", "status": "accepted", "error": None}
    assert (await api.get("/api/v1/entries/99", headers=auth)).json()["id"] == "99"


async def test_ticket_is_case_normalised(api, auth):
    r = await put(api, auth, "n1", ticket=" proj-7 ")
    assert r.json()["ticket"] == "PROJ-7"


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("ticket", "not a ticket", "ticket"),
        ("ticket", "PROJ-0", "ticket"),
        ("date", "2026-13-01", "date"),
        ("start", "9 o'clock", "start"),
        ("start", "25:00", "start"),
        ("duration", -5, "duration"),
        ("duration", "ninety", "duration"),
        ("timezone", "Mars/Olympus", "timezone"),
        ("user", "", "user"),
        ("user", "j\r\nX-Injected: 1", "user"),
        ("description", "nul\x00byte", "description"),
        ("updated_at", "yesterday", "updated_at"),
    ],
)
async def test_validation_errors_name_the_field_and_store_nothing(api, auth, field, value, needle):
    r = await put(api, auth, "bad1", **{field: value})
    assert r.status_code == 422, r.text
    assert needle in r.text
    assert (await api.get("/api/v1/entries/bad1", headers=auth)).status_code == 404


@pytest.mark.parametrize("missing", ["user", "ticket", "date", "start", "duration"])
async def test_required_fields(api, auth, missing):
    body = {k: v for k, v in ENTRY.items() if k != missing}
    r = await api.put("/api/v1/entries/req1", json=body, headers=auth)
    assert r.status_code == 422 and missing in r.text


async def test_unknown_jira_instance_is_rejected(api, auth):
    r = await put(api, auth, "ji1", jira_instance="nope")
    assert r.status_code == 422 and "jira_instance" in r.text


async def test_stale_put_is_ignored(api, auth):
    await put(api, auth, "s1", duration=60, updated_at="2026-11-25T10:00:00Z")
    r = await put(api, auth, "s1", duration=30, updated_at="2026-11-25T09:00:00Z")
    assert r.status_code == 202
    assert (await api.get("/api/v1/entries/s1", headers=auth)).json()["duration"] == 60


async def test_identical_put_changes_nothing(api, auth, app):
    from sqlalchemy import select

    from app.db.models import ChangeRow, EntryRow

    await put(api, auth, "same")
    async with app.state.sessionmaker() as s:
        row = (await s.execute(select(EntryRow).where(EntryRow.id == "same"))).scalars().all()
        version = next(r for r in row if r.user == "jdoe").version
        feed_before = (await s.execute(select(ChangeRow).where(ChangeRow.entry_id == "same"))).scalars().all()
    await put(api, auth, "same")
    async with app.state.sessionmaker() as s:
        rows = (await s.execute(select(EntryRow).where(EntryRow.id == "same"))).scalars().all()
        feed_after = (await s.execute(select(ChangeRow).where(ChangeRow.entry_id == "same"))).scalars().all()
    assert [r.version for r in rows if r.user == "jdoe"] == [version]
    assert len(feed_after) == len(feed_before)


async def test_delete_keeps_entry_readable_and_newer_put_revives_it(api, auth):
    await put(api, auth, "d1")
    r = await api.delete("/api/v1/entries/d1", headers=auth)
    assert r.status_code == 202
    got = (await api.get("/api/v1/entries/d1", headers=auth)).json()
    assert got["sync"]["status"] == "deleted" and got["deleted"] is True
    r = await put(api, auth, "d1", updated_at="2099-01-01T00:00:00Z")
    assert r.json()["deleted"] is False and r.json()["sync"]["status"] != "deleted"


async def test_an_older_delete_and_an_older_put_after_a_delete_are_stale(api, auth):
    await put(api, auth, "d2", duration=60, updated_at="2026-11-25T12:00:00Z")
    before = (await api.get("/api/v1/entries/d2", headers=auth)).json()
    feed_before = (await api.get("/api/v1/changes?after=0&limit=1000", headers=auth)).json()["items"]
    r = await api.delete("/api/v1/entries/d2", params={"updated_at": "2026-11-25T11:00:00Z"}, headers=auth)
    assert r.status_code == 202 and r.json()["deleted"] is False
    assert (await api.get("/api/v1/entries/d2", headers=auth)).json() == before
    assert (await api.get("/api/v1/changes?after=0&limit=1000", headers=auth)).json()["items"] == feed_before

    r = await api.delete("/api/v1/entries/d2", params={"updated_at": "2026-11-25T13:00:00Z"}, headers=auth)
    assert r.json()["deleted"] is True and r.json()["sync"]["status"] == "deleted"
    deleted = (await api.get("/api/v1/entries/d2", headers=auth)).json()
    # a change made before the deletion arrives after it: the entry stays deleted
    r = await put(api, auth, "d2", duration=30, updated_at="2026-11-25T12:30:00Z")
    assert r.status_code == 202
    assert (await api.get("/api/v1/entries/d2", headers=auth)).json() == deleted
    r = await put(api, auth, "d2", duration=30, updated_at="2026-11-25T13:30:00Z")
    assert r.json()["deleted"] is False and r.json()["duration"] == 30


async def test_delete_unknown_entry_is_404(api, auth):
    assert (await api.delete("/api/v1/entries/nope", headers=auth)).status_code == 404


async def test_list_pages_with_cursor_and_filters(api, auth):
    for i in range(5):
        await put(api, auth, f"l{i}", user="alice" if i % 2 else "bob")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "user": "bob"}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/api/v1/entries", params=params, headers=auth)).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["l0", "l2", "l4"]
    skipped = (await api.get("/api/v1/entries", params={"status": "skipped"}, headers=auth)).json()
    assert {e["id"] for e in skipped["items"]} >= {"l0", "l1"}
    bad = await api.get("/api/v1/entries", params={"status": "bogus"}, headers=auth)
    assert bad.status_code == 422


async def test_batch_with_mixed_items(api, auth):
    entries = [{**ENTRY, "id": f"b{i}"} for i in range(3)]
    entries.insert(1, {**ENTRY, "id": "bad", "duration": -1})
    entries.append({**ENTRY})  # no id
    r = await api.post("/api/v1/entries/batch", json={"entries": entries}, headers=auth)
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 3
    statuses = [(x["id"], x["status"]) for x in body["results"]]
    assert statuses == [("b0", "accepted"), ("bad", "rejected"), ("b1", "accepted"), ("b2", "accepted"),
                        (None, "rejected")]
    assert "duration" in body["results"][1]["error"] and "id" in body["results"][4]["error"]
    assert (await api.get("/api/v1/entries/bad", headers=auth)).status_code == 404


async def test_batch_over_1000_is_rejected(api, auth):
    r = await api.post("/api/v1/entries/batch", json={"entries": [{**ENTRY, "id": i} for i in range(1001)]},
                       headers=auth)
    assert r.status_code == 422 and "entries" in r.text


async def test_retry_only_for_retryable_states(api, auth):
    await put(api, auth, "r1", duration=0)
    r = await api.post("/api/v1/entries/r1/retry", headers=auth)
    assert r.status_code == 202 and r.json()["sync"]["status"] == "skipped"  # still nothing to push
    assert (await api.post("/api/v1/entries/none/retry", headers=auth)).status_code == 404
    await api.delete("/api/v1/entries/r1", headers=auth)
    r = await api.post("/api/v1/entries/r1/retry", headers=auth)
    assert r.status_code == 409 and r.json()["detail"] == "entry r1 is deleted: nothing to retry"
    assert (await api.get("/api/v1/entries/r1", headers=auth)).json()["sync"]["status"] == "deleted"


async def test_missing_or_unknown_key_is_401(api):
    assert (await api.get("/api/v1/entries")).status_code == 401
    r = await api.get("/api/v1/entries", headers={"Authorization": "Bearer tts_nope"})
    assert r.status_code == 401 and r.json() == {"detail": "missing or unknown API key"}


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v1/entries/shared"), ("PUT", "/api/v1/entries/shared"), ("DELETE", "/api/v1/entries/shared"),
    ("POST", "/api/v1/entries/shared/retry"),
])
async def test_other_tenants_entry_is_404(api, make_tenant, method, path):
    a, b = await make_tenant("A"), await make_tenant("B")
    ha, hb = ({"Authorization": f"Bearer {t.api_key}"} for t in (a, b))
    await put(api, ha, "shared", duration=0)
    if method == "PUT":
        # B writing its own "shared" creates B's entry and leaves A's untouched
        await api.put(path, json={**ENTRY, "duration": 15}, headers=hb)
        assert (await api.get(path, headers=ha)).json()["duration"] == 0
        return
    r = await api.request(method, path, headers=hb)
    assert r.status_code == 404
    assert (await api.get("/api/v1/entries/shared", headers=ha)).json()["deleted"] is False
    listing = (await api.get("/api/v1/entries", headers=hb)).json()
    assert listing["items"] == []


async def test_entry_ids_are_per_tenant(api, make_tenant):
    a, b = await make_tenant("A"), await make_tenant("B")
    await put(api, {"Authorization": f"Bearer {a.api_key}"}, "4711", duration=10)
    await put(api, {"Authorization": f"Bearer {b.api_key}"}, "4711", duration=20)
    ga = (await api.get("/api/v1/entries/4711", headers={"Authorization": f"Bearer {a.api_key}"})).json()
    gb = (await api.get("/api/v1/entries/4711", headers={"Authorization": f"Bearer {b.api_key}"})).json()
    assert (ga["duration"], gb["duration"]) == (10, 20)


async def test_a_revoked_key_stops_working(api, app, tenant, auth):
    import asyncio
    import os
    import subprocess
    import sys

    assert (await api.get("/api/v1/entries", headers=auth)).status_code == 200
    out = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "app.cli", "revoke-api-key", "--tenant", str(tenant.tenant_id),
                         "--key", "-"], input=tenant.api_key + "\n", capture_output=True, text=True,
        env=dict(os.environ), timeout=60)
    assert out.returncode == 0, out.stderr

    async def refused() -> bool:  # the per-process key cache forgets within TENANT_CACHE_SECONDS
        return (await api.get("/api/v1/entries", headers=auth)).status_code == 401

    await wait_until(refused, timeout=30, interval=0.2)
