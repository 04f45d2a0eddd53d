"""Conflicts, notifications, changes feed and audit APIs (CONTRACT section 8): tenancy, resolution, rebuilding."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from app.db.models import EntryRow
from app.services.unit_of_work import UnitOfWork
from tests.integration.jira_world import Jira, entry_row, outcome, synced_entry


def bearer(t: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.api_key}"}


@pytest.fixture
def conflicted(api: Any, api_without_window: Any, pusher: Any, jira: Jira) -> Any:
    """Entry 4711, pushed to JIRA, then edited (or deleted) there by a person long after its last local change."""

    async def make(*, deleted: bool = False, **edit: Any) -> dict[str, Any]:
        worklog = await synced_entry(api, pusher, jira)
        body = jira.remote_delete(worklog["id"]) if deleted else jira.remote_edit(worklog["id"], **edit)
        assert await outcome(api_without_window, jira, body) == "jira_wins"
        r = await api.get("/api/v1/conflicts?status=open", headers=jira.headers)
        assert r.status_code == 200 and len(r.json()) == 1
        conflict: dict[str, Any] = r.json()[0]
        conflict["worklog_id"] = worklog["id"]
        return conflict

    return make


# -- conflicts -------------------------------------------------------------------------------------------------

async def test_conflicts_are_listed_by_status_and_tenant(app, api, tenant, make_tenant, conflicted):  # type: ignore[no-untyped-def]
    c = await conflicted(time_spent_seconds=7200)
    assert c["entry_id"] == "4711" and c["status"] == "open" and c["detected_at"]
    assert c["local"]["duration"] == 90 and c["remote"]["time_spent_seconds"] == 7200
    assert (await api.get("/api/v1/conflicts?status=resolved", headers=bearer(tenant))).json() == []
    other = await make_tenant(name="Other")
    assert (await api.get("/api/v1/conflicts", headers=bearer(other))).json() == []
    r = await api.post(f"/api/v1/conflicts/{c['id']}/resolve", json={"winner": "jira"}, headers=bearer(other))
    assert r.status_code == 404
    assert (await api.get(f"/api/v1/conflicts/{c['id']}", headers=bearer(other))).status_code == 404
    assert (await api.get("/api/v1/conflicts")).status_code == 401
    assert (await api.get("/api/v1/conflicts?status=maybe", headers=bearer(tenant))).status_code == 422


async def test_resolving_for_jira_adopts_its_values_and_ends_synced(app, api, tenant, pusher, conflicted):  # type: ignore[no-untyped-def]
    c = await conflicted(time_spent_seconds=7200, started="2026-11-25T09:30:00.000+0000",
                         comment="#4711: Development: Fix login and logout")
    r = await api.post(f"/api/v1/conflicts/{c['id']}/resolve", json={"winner": "jira"}, headers=bearer(tenant))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "resolved" and r.json()["winner"] == "jira"
    entry = (await api.get("/api/v1/entries/4711", headers=bearer(tenant))).json()
    # 09:30 UTC is 10:30 in Berlin, the entry's zone
    assert (entry["date"], entry["start"], entry["duration"]) == ("2026-11-25", "10:30", 120)
    assert entry["description"] == "Fix login and logout" and entry["activity"] == "Development"
    assert entry["sync"]["status"] == "synced" and entry["sync"]["last_error"] is None
    row = await entry_row(app, tenant.tenant_id)
    assert row.due_at is None and row.synced_version == row.version
    feed = (await api.get("/api/v1/changes?after=0&limit=1000", headers=bearer(tenant))).json()["items"]
    assert feed[-1]["kind"] == "remote_adoption" and feed[-1]["entry"]["duration"] == 120
    audit = (await api.get("/api/v1/audit?entry_id=4711", headers=bearer(tenant))).json()
    assert {"conflict.resolve", "entry.remote_adoption"} <= {a["action"] for a in audit}
    again = await api.post(f"/api/v1/conflicts/{c['id']}/resolve", json={"winner": "timetracker"},
                           headers=bearer(tenant))
    assert again.status_code == 409


async def test_resolving_for_jira_with_a_foreign_comment_writes_the_anchor_back(app, api, tenant, pusher, jira,  # type: ignore[no-untyped-def]
                                                                               conflicted):
    c = await conflicted(time_spent_seconds=3600, comment="reviewed the login fix")
    r = await api.post(f"/api/v1/conflicts/{c['id']}/resolve", json={"winner": "jira"}, headers=bearer(tenant))
    assert r.status_code == 200
    row = await entry_row(app, tenant.tenant_id)
    assert row.description == "reviewed the login fix" and row.duration == 60 and row.activity == "Development"
    # JIRA's comment lost the #4711: anchor: the adopted state is written back so JIRA equals the entry
    assert row.sync_status == "pending" and row.due_at is not None
    await pusher(tenant.tenant_id, "4711")
    assert (await entry_row(app, tenant.tenant_id)).sync_status == "synced"
    worklog = jira.worklog("PROJ-123", c["worklog_id"])  # written back in place, anchor and all
    assert worklog["comment"] == "#4711: Development: reviewed the login fix" and worklog["timeSpentSeconds"] == 3600


async def test_resolving_for_timetracker_pushes_the_entry_again(app, api, tenant, pusher, jira, conflicted):  # type: ignore[no-untyped-def]
    c = await conflicted(time_spent_seconds=7200)
    r = await api.post(f"/api/v1/conflicts/{c['id']}/resolve", json={"winner": "timetracker"}, headers=bearer(tenant))
    assert r.status_code == 200 and r.json()["entry"]["sync"]["status"] == "pending"
    row = await entry_row(app, tenant.tenant_id)
    assert row.duration == 90 and row.base is None and row.due_at is not None and row.worklog_id == c["worklog_id"]
    assert (await api.get("/api/v1/conflicts?status=open", headers=bearer(tenant))).json() == []
    await pusher(tenant.tenant_id, "4711")
    assert (await entry_row(app, tenant.tenant_id)).sync_status == "synced"
    assert jira.worklog("PROJ-123", c["worklog_id"])["timeSpentSeconds"] == 5400  # TimeTracker's 90 minutes


async def test_resolving_a_deletion(app, api, tenant, pusher, conflicted):  # type: ignore[no-untyped-def]
    c = await conflicted(deleted=True)
    assert c["remote"] is None
    r = await api.post(f"/api/v1/conflicts/{c['id']}/resolve", json={"winner": "timetracker"}, headers=bearer(tenant))
    assert r.status_code == 200
    row = await entry_row(app, tenant.tenant_id)
    assert row.worklog_id is None and row.due_at is not None and row.sync_status == "pending"  # created again
    await pusher(tenant.tenant_id, "4711")
    row = await entry_row(app, tenant.tenant_id)
    assert row.sync_status == "synced" and row.worklog_id not in (None, c["worklog_id"])


async def test_resolving_a_deletion_for_jira_deletes_the_entry(app, api, tenant, pusher, conflicted):  # type: ignore[no-untyped-def]
    c = await conflicted(deleted=True)
    r = await api.post(f"/api/v1/conflicts/{c['id']}/resolve", json={"winner": "jira"}, headers=bearer(tenant))
    assert r.status_code == 200
    entry = (await api.get("/api/v1/entries/4711", headers=bearer(tenant))).json()
    assert entry["deleted"] is True and entry["sync"]["status"] == "deleted"


async def test_resolve_validates_the_winner(app, api, tenant, pusher, conflicted):  # type: ignore[no-untyped-def]
    c = await conflicted(time_spent_seconds=7200)
    r = await api.post(f"/api/v1/conflicts/{c['id']}/resolve", json={"winner": "both"}, headers=bearer(tenant))
    assert r.status_code == 422
    assert (await api.post("/api/v1/conflicts/nope/resolve", json={"winner": "jira"},
                           headers=bearer(tenant))).status_code == 404


# -- notifications -------------------------------------------------------------------------------------------

async def test_notifications_filter_and_mark_read(app, api, tenant, make_tenant, conflicted):  # type: ignore[no-untyped-def]
    await conflicted(time_spent_seconds=7200)
    r = await api.get("/api/v1/notifications?user=jdoe&unread=true", headers=bearer(tenant))
    assert r.status_code == 200
    [note] = r.json()
    assert note["kind"] == "conflict" and note["entry_id"] == "4711" and note["read_at"] is None
    assert "PROJ-123" in note["message"] and note["jira_instance"]
    assert (await api.get("/api/v1/notifications?user=someone", headers=bearer(tenant))).json() == []
    other = await make_tenant(name="Other")
    assert (await api.get("/api/v1/notifications", headers=bearer(other))).json() == []
    assert (await api.post(f"/api/v1/notifications/{note['id']}/read", headers=bearer(other))).status_code == 404
    r = await api.post(f"/api/v1/notifications/{note['id']}/read", headers=bearer(tenant))
    assert r.status_code == 200 and r.json()["read_at"]
    first_read = r.json()["read_at"]
    assert (await api.post(f"/api/v1/notifications/{note['id']}/read", headers=bearer(tenant))).json()["read_at"] \
        == first_read
    assert (await api.get("/api/v1/notifications?unread=true", headers=bearer(tenant))).json() == []
    assert len((await api.get("/api/v1/notifications", headers=bearer(tenant))).json()) == 1


async def test_pushes_parking_at_once_leave_one_notification(app, api, tenant):  # type: ignore[no-untyped-def]
    """Two pushes that find the connection rejected at the same moment: the second waits for the first to commit
    and then sees its unread notification (before, both saw none and both added one)."""
    from sqlalchemy import text

    from app.services.push import _notify_once

    async def notify(session: Any) -> None:
        await _notify_once(session, tenant_id=tenant.tenant_id, user="jdoe", kind="auth_required", message="reconnect",
                           entry_id=None, instance_id=None, per_entry=False)

    async def second() -> None:
        async with app.state.sessionmaker() as session:
            await notify(session)
            await session.commit()

    waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    async with app.state.sessionmaker() as first, app.state.sessionmaker() as observer:
        await notify(first)  # holds the key until it commits
        task = asyncio.create_task(second())
        for _ in range(500):  # until the second push waits for the key
            if (await observer.execute(waiting)).scalar_one() >= 1 or task.done():
                break
            await asyncio.sleep(0.01)
        assert not task.done()
        await first.commit()
    await task
    notes = (await api.get("/api/v1/notifications?user=jdoe&unread=true", headers=bearer(tenant))).json()
    assert [n["kind"] for n in notes] == ["auth_required"]


# -- changes feed ----------------------------------------------------------------------------------------------

async def _read_feed(api: Any, tenant: Any, *, page: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        r = await api.get(f"/api/v1/changes?after={after}&limit={page}", headers=bearer(tenant))
        assert r.status_code == 200
        data = r.json()
        if not data["items"]:
            assert data["next"] == after
            return items
        assert [i["seq"] for i in data["items"]] == sorted(i["seq"] for i in data["items"])
        assert all(i["seq"] > after for i in data["items"])
        items.extend(data["items"])
        after = data["next"]


async def test_changes_feed_rebuilds_every_entry(app, api, api_without_window, tenant, make_tenant, pusher, jira):  # type: ignore[no-untyped-def]
    base = {"user": "jdoe", "ticket": "PROJ-1", "date": "2026-11-25", "start": "09:00", "duration": 30,
            "timezone": "UTC"}
    await api.put("/api/v1/entries/1", json={**base, "updated_at": "2026-11-25T10:00:00Z"}, headers=bearer(tenant))
    await api.put("/api/v1/entries/2", json={**base, "ticket": "NOPE-1", "updated_at": "2026-11-25T10:00:00Z"},
                  headers=bearer(tenant))
    await api.put("/api/v1/entries/3", json={**base, "duration": 0, "updated_at": "2026-11-25T10:00:00Z"},
                  headers=bearer(tenant))
    await api.delete("/api/v1/entries/3", headers=bearer(tenant))
    await pusher(tenant.tenant_id, "1")  # the push engine writes entry 1's worklog
    # a JIRA-side change adopted through a resolved conflict
    worklog = await synced_entry(api, pusher, jira)
    assert await outcome(api_without_window, jira, jira.remote_edit(worklog["id"], time_spent_seconds=7200)) == \
        "jira_wins"
    [c] = (await api.get("/api/v1/conflicts", headers=bearer(tenant))).json()
    await api.post(f"/api/v1/conflicts/{c['id']}/resolve", json={"winner": "jira"}, headers=bearer(tenant))
    other = await make_tenant(name="Other")
    await api.put("/api/v1/entries/1", json={**base, "updated_at": "2026-11-25T10:00:00Z"}, headers=bearer(other))

    for page in (1, 3, 1000):
        rebuilt: dict[str, dict[str, Any]] = {}
        for item in await _read_feed(api, tenant, page=page):
            assert item["entry"]["id"] == item["entry_id"]
            rebuilt[item["entry_id"]] = item["entry"]
        assert set(rebuilt) == {"1", "2", "3", "4711"}
        for entry_id, entry in rebuilt.items():
            current = (await api.get(f"/api/v1/entries/{entry_id}", headers=bearer(tenant))).json()
            assert entry == current, entry_id
    kinds = {i["kind"] for i in await _read_feed(api, tenant, page=1000)}
    assert kinds == {"sync_status", "remote_adoption", "local_change"}
    assert len(await _read_feed(api, other, page=1000)) == 1


async def test_changes_feed_is_read_in_commit_order_while_writers_race(app, api, tenant):  # type: ignore[no-untyped-def]
    """A reader that has passed seq N never finds a new item below N later, and no writer waits for another to
    commit: a record written before another but committed after it is placed after it in the feed."""
    base = {"user": "jdoe", "ticket": "NOPE-1", "date": "2026-11-25", "start": "09:00", "duration": 30,
            "timezone": "UTC"}
    await api.put("/api/v1/entries/slow", json=base, headers=bearer(tenant))
    async with UnitOfWork.open(app.state.sessionmaker) as slow_writer:
        # the push engine records a status change: its feed record is written, the commit comes later
        row = (await slow_writer.session.execute(select(EntryRow).where(
            EntryRow.tenant_id == tenant.tenant_id, EntryRow.id == "slow").with_for_update())).scalar_one()
        slow_writer.entry(row).fail("JIRA answered 400")
        await slow_writer.flush_feed()
        # meanwhile TimeTracker changes another entry: accepted while the slow writer is still open
        fast = await asyncio.wait_for(  # a writer that waited for the slow one would never get here
            api.put("/api/v1/entries/fast", json={**base, "duration": 45}, headers=bearer(tenant)), 60)
        assert fast.status_code == 202
        seen = await _read_feed(api, tenant, page=1000)
        assert ("fast", "skipped") in {(i["entry_id"], i["entry"]["sync"]["status"]) for i in seen}
        await slow_writer.commit()
    now = await _read_feed(api, tenant, page=1000)
    passed = max(i["seq"] for i in seen)
    assert [i for i in now if i["seq"] <= passed] == seen, "an item appeared behind a seq the reader had passed"
    assert [(i["entry_id"], i["entry"]["sync"]["status"]) for i in now if i["seq"] > passed] == [("slow", "failed")]


async def test_readers_and_writers_at_once_place_every_record_once(app, api, tenant):  # type: ignore[no-untyped-def]
    """Concurrent readers place newly committed records one at a time: each record gets one position, no two
    records share one, and every reader's page is in position order."""
    base = {"user": "jdoe", "ticket": "NOPE-1", "date": "2026-11-25", "start": "09:00", "duration": 30,
            "timezone": "UTC"}

    async def write(i: int) -> None:
        r = await api.put(f"/api/v1/entries/race-{i}", json=base, headers=bearer(tenant))
        assert r.status_code == 202

    async def read() -> list[int]:
        r = await api.get("/api/v1/changes?limit=1000", headers=bearer(tenant))
        assert r.status_code == 200, r.text
        return [i["seq"] for i in r.json()["items"]]

    results = await asyncio.gather(*(write(i) for i in range(12)), *(read() for _ in range(12)))
    for page in results[12:]:
        assert page == sorted(set(page))
    feed = await _read_feed(api, tenant, page=1000)
    assert sorted(i["entry_id"] for i in feed) == sorted(f"race-{i}" for i in range(12))
    assert len({i["seq"] for i in feed}) == len(feed)


# -- audit ---------------------------------------------------------------------------------------------------

async def test_audit_is_per_tenant_and_filtered_by_entry(app, api, tenant, make_tenant, conflicted):  # type: ignore[no-untyped-def]
    c = await conflicted(time_spent_seconds=7200)
    await api.post(f"/api/v1/conflicts/{c['id']}/resolve", json={"winner": "timetracker"}, headers=bearer(tenant))
    rows = (await api.get("/api/v1/audit?entry_id=4711&limit=10", headers=bearer(tenant))).json()
    assert [r["action"] for r in rows][:2] == ["conflict.resolve", "remote.worklog_changed"]  # newest first
    first = rows[0]
    assert set(first) == {"at", "action", "entry_id", "jira_instance", "outcome", "http_status", "detail",
                          "duration_ms"}
    assert first["outcome"] == "timetracker" and first["entry_id"] == "4711" and first["jira_instance"]
    assert (await api.get("/api/v1/audit?entry_id=nope", headers=bearer(tenant))).json() == []
    assert len((await api.get("/api/v1/audit?limit=1", headers=bearer(tenant))).json()) == 1
    other = await make_tenant(name="Other")
    assert (await api.get("/api/v1/audit", headers=bearer(other))).json() == []


async def test_changes_feed_carries_content_changes_that_keep_the_status(app, api, tenant):  # type: ignore[no-untyped-def]
    base = {"user": "jdoe", "ticket": "NOPE-1", "date": "2026-11-25", "start": "09:00", "duration": 30,
            "timezone": "UTC"}
    await api.put("/api/v1/entries/2", json={**base, "updated_at": "2026-11-25T10:00:00Z"}, headers=bearer(tenant))
    await api.put("/api/v1/entries/2", json={**base, "description": "new", "updated_at": "2026-11-25T10:01:00Z"},
                  headers=bearer(tenant))
    items = await _read_feed(api, tenant, page=100)
    assert items[-1]["entry"]["description"] == "new"
