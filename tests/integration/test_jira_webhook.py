"""JIRA webhook (CONTRACT section 7): signature, size, unknown instance, echoes, worklogs that are not ours,
duplicates, out-of-order deliveries, and both branches of the conflict policy (CONTRACT section 8)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.db.models import ConflictRow, EntryRow, JiraInstanceRow, NotificationRow
from app.domain.sync import snapshot
from app.domain.worklog import build_worklog
from app.security.secrets import binding
from app.security.signatures import sign_hub

WEBHOOK_SECRET = "jira-hook-secret"
ENTRY = {"user": "jdoe", "ticket": "PROJ-123", "date": "2026-11-25", "start": "09:00", "duration": 90,
         "timezone": "Europe/Berlin", "description": "Fix login", "activity": "Development",
         "updated_at": "2026-11-25T10:31:00Z"}
# 09:00 Berlin is 08:00 UTC; JIRA renders `started` in its own zone
STARTED_UTC = "2026-11-25T08:00:00.000+0000"
COMMENT = "#4711: Development: Fix login"


@dataclass
class Instance:
    id: uuid.UUID
    tenant_id: uuid.UUID
    webhook_secret: str


async def make_instance(app: Any, tenant_id: uuid.UUID, *, name: str = "Main JIRA",
                        project_keys: list[str] | None = None, base_url: str = "http://jira.invalid",
                        consumer_key: str = "timetracker",
                        private_key_pem: bytes = b"not a key", webhook_secret: str = WEBHOOK_SECRET) -> Instance:
    """An instance written with the ORM (the instances API is someone else's work in progress)."""
    box = app.state.secret_box
    iid = uuid.uuid4()
    async with app.state.sessionmaker() as session:
        session.add(JiraInstanceRow(
            id=iid, tenant_id=tenant_id, name=name, base_url=base_url, consumer_key=consumer_key,
            rate_limit_per_second=50, project_keys=project_keys or ["PROJ"],
            private_key_enc=box.seal(private_key_pem, binding("jira_instances", "private_key", iid)),
            public_key_pem="-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----",
            webhook_secret_enc=box.seal(webhook_secret, binding("jira_instances", "webhook_secret", iid)),
        ))
        await session.commit()
    return Instance(iid, tenant_id, webhook_secret)


async def synced_entry(app: Any, api: Any, tenant: Any, instance: Instance, *, entry_id: str = "4711",
                       worklog_id: str = "10042", changed_ago: timedelta = timedelta(hours=1),
                       remote_updated_ms: int = 1_000, **fields: Any) -> None:
    """An entry as the push engine leaves it after writing its worklog."""
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    r = await api.put(f"/api/v1/entries/{entry_id}", json={**ENTRY, **fields}, headers=auth)
    assert r.status_code == 202, r.text
    async with app.state.sessionmaker() as session:
        row = (await session.execute(select(EntryRow).where(
            EntryRow.tenant_id == tenant.tenant_id, EntryRow.id == entry_id))).scalar_one()
        body = build_worklog(entry_id=row.id, day=row.date, start=row.start, zone=row.timezone,
                             duration_minutes=row.duration, activity=row.activity, description=row.description)
        row.worklog_id, row.worklog_instance_id, row.worklog_ticket = worklog_id, instance.id, row.ticket
        row.base = snapshot(body)
        row.remote_updated_ms = remote_updated_ms
        row.sync_status, row.due_at, row.synced_version, row.attempts = "synced", None, row.version, 1
        row.local_changed_at = datetime.now(UTC) - changed_ago
        row.synced_at = datetime.now(UTC)
        await session.commit()


def worklog_json(*, worklog_id: str = "10042", started: str = STARTED_UTC, seconds: int = 5400,
                 comment: str = COMMENT, updated_ms: int = 2_000) -> dict[str, Any]:
    updated = datetime.fromtimestamp(updated_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{updated_ms % 1000:03d}+0000"
    return {"id": worklog_id, "issueId": "10001", "started": started, "timeSpentSeconds": seconds,
            "comment": comment, "updated": updated, "created": updated,
            "author": {"name": "jdoe", "key": "jdoe"}, "updateAuthor": {"name": "alice", "key": "alice"}}


def payload(event: str = "worklog_updated", *, timestamp: int | None = None, **worklog: Any) -> bytes:
    wl = worklog_json(**worklog)
    return json.dumps({"webhookEvent": event, "timestamp": timestamp or worklog.get("updated_ms", 2_000),
                       "worklog": wl}).encode()


async def deliver(api: Any, instance: Instance, body: bytes, *, secret: str | None = None,
                  signature: str | None = None) -> Any:
    headers = {"Content-Type": "application/json",
               "X-Hub-Signature": signature or sign_hub(secret or instance.webhook_secret, body)}
    return await api.post(f"/webhooks/jira/{instance.id}", content=body, headers=headers)


async def entry_row(app: Any, tenant_id: uuid.UUID, entry_id: str = "4711") -> EntryRow:
    async with app.state.sessionmaker() as session:
        return (await session.execute(select(EntryRow).where(
            EntryRow.tenant_id == tenant_id, EntryRow.id == entry_id))).scalar_one()


async def conflicts_of(app: Any, tenant_id: uuid.UUID) -> list[ConflictRow]:
    async with app.state.sessionmaker() as session:
        return list((await session.execute(select(ConflictRow).where(ConflictRow.tenant_id == tenant_id))).scalars())


async def notifications_of(app: Any, tenant_id: uuid.UUID) -> list[NotificationRow]:
    async with app.state.sessionmaker() as session:
        return list((await session.execute(
            select(NotificationRow).where(NotificationRow.tenant_id == tenant_id))).scalars())


# -- authentication and shape ----------------------------------------------------------------------------------

async def test_unsigned_webhook_is_401(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    body = payload()
    r = await api.post(f"/webhooks/jira/{inst.id}", content=body)
    assert r.status_code == 401


async def test_wrongly_signed_webhook_is_401(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    await synced_entry(app, api, tenant, inst)
    body = payload(seconds=7200)
    assert (await deliver(api, inst, body, secret="not-the-secret")).status_code == 401
    assert (await deliver(api, inst, body, signature="sha1=abc")).status_code == 401
    other = payload(seconds=3600)
    assert (await deliver(api, inst, body, signature=sign_hub(WEBHOOK_SECRET, other))).status_code == 401
    assert (await entry_row(app, tenant.tenant_id)).sync_status == "synced"


async def test_unknown_instance_is_404(app, api, tenant):  # type: ignore[no-untyped-def]
    body = payload()
    for iid in (uuid.uuid4(), "not-a-uuid"):
        r = await api.post(f"/webhooks/jira/{iid}", content=body,
                           headers={"X-Hub-Signature": sign_hub(WEBHOOK_SECRET, body)})
        assert r.status_code == 404


async def test_oversized_body_is_413(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    body = b"{" + b" " * (1024 * 1024 + 1) + b"}"
    assert (await deliver(api, inst, body)).status_code == 413


async def test_malformed_body_is_400(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    assert (await deliver(api, inst, b"not json")).status_code == 400
    assert (await deliver(api, inst, json.dumps({"webhookEvent": "worklog_updated"}).encode())).status_code == 400


async def test_non_worklog_events_are_ignored(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    r = await deliver(api, inst, json.dumps({"webhookEvent": "jira:issue_updated", "issue": {}}).encode())
    assert r.status_code == 200 and r.json()["outcome"] == "ignore"


# -- what is not a remote change -----------------------------------------------------------------------------

async def test_echo_of_our_own_write_changes_nothing(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    await synced_entry(app, api, tenant, inst)
    # JIRA renders the same instant in another zone: still our write
    for started in (STARTED_UTC, "2026-11-25T03:00:00.000-0500", "2026-11-25T09:00:00.000+0100"):
        r = await deliver(api, inst, payload(started=started, updated_ms=2_000))
        assert r.status_code == 200 and r.json()["outcome"] == "ignore", r.text
    row = await entry_row(app, tenant.tenant_id)
    assert row.sync_status == "synced" and row.due_at is None
    assert await conflicts_of(app, tenant.tenant_id) == []


async def test_worklogs_that_are_not_ours_are_ignored(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    await synced_entry(app, api, tenant, inst)
    # someone else's worklog, and a copy of our anchor on a worklog we did not write
    for body in (payload(worklog_id="99", comment="Meeting", seconds=60),
                 payload(worklog_id="100", comment=COMMENT, seconds=60),
                 payload("worklog_deleted", worklog_id="101")):
        r = await deliver(api, inst, body)
        assert r.status_code == 200 and r.json()["outcome"] == "ignore"
    assert (await entry_row(app, tenant.tenant_id)).sync_status == "synced"


async def test_worklog_of_another_tenants_instance_is_not_ours(app, api, make_tenant, tenant):  # type: ignore[no-untyped-def]
    mine = await make_instance(app, tenant.tenant_id)
    await synced_entry(app, api, tenant, mine)
    other = await make_tenant(name="Other")
    theirs = await make_instance(app, other.tenant_id, webhook_secret="their-secret")
    r = await deliver(api, theirs, payload(seconds=7200))
    assert r.json()["outcome"] == "ignore"
    assert (await entry_row(app, tenant.tenant_id)).sync_status == "synced"


# -- real remote changes -----------------------------------------------------------------------------------------

async def test_remote_edit_of_an_old_entry_is_a_conflict_once(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    await synced_entry(app, api, tenant, inst)
    body = payload(seconds=7200, updated_ms=5_000)
    r = await deliver(api, inst, body)
    assert r.status_code == 200 and r.json()["outcome"] == "jira_wins", r.text
    row = await entry_row(app, tenant.tenant_id)
    assert row.sync_status == "conflict" and row.due_at is None
    assert "changed in JIRA" in (row.last_error or "") and "2h" in (row.last_error or "")
    # JIRA retries and duplicates the delivery; an older update arrives late
    for again in (body, body, payload(seconds=3000, updated_ms=4_000)):
        assert (await deliver(api, inst, again)).json()["outcome"] == "ignore"
    conflicts = await conflicts_of(app, tenant.tenant_id)
    assert len(conflicts) == 1 and conflicts[0].status == "open"
    assert conflicts[0].remote is not None and conflicts[0].remote["time_spent_seconds"] == 7200
    assert conflicts[0].remote["duration"] == 120 and conflicts[0].remote["start"] == "09:00"
    assert conflicts[0].local["duration"] == 90
    notes = await notifications_of(app, tenant.tenant_id)
    assert [(n.kind, n.user, n.entry_id) for n in notes] == [("conflict", "jdoe", "4711")]
    # the entry keeps TimeTracker's values until a person decides
    assert row.duration == 90


async def test_remote_edit_within_the_window_pushes_timetracker_again(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    await synced_entry(app, api, tenant, inst, changed_ago=timedelta(seconds=30))
    r = await deliver(api, inst, payload(seconds=7200, updated_ms=5_000))
    assert r.json()["outcome"] == "timetracker_wins"
    row = await entry_row(app, tenant.tenant_id)
    assert row.sync_status == "pending" and row.due_at is not None and row.base is None
    assert row.worklog_id == "10042"  # updated in place
    assert await conflicts_of(app, tenant.tenant_id) == []


async def test_remote_deletion_of_an_old_entry_is_a_conflict_with_no_remote(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    await synced_entry(app, api, tenant, inst)
    body = payload("worklog_deleted", timestamp=6_000)
    assert (await deliver(api, inst, body)).json()["outcome"] == "jira_wins"
    assert (await deliver(api, inst, body)).json()["outcome"] == "ignore"
    # an update that happened before the deletion arrives after it
    assert (await deliver(api, inst, payload(seconds=60, updated_ms=5_500))).json()["outcome"] == "ignore"
    row = await entry_row(app, tenant.tenant_id)
    assert row.sync_status == "conflict" and "deleted in JIRA" in (row.last_error or "")
    conflicts = await conflicts_of(app, tenant.tenant_id)
    assert len(conflicts) == 1 and conflicts[0].remote is None


async def test_remote_deletion_within_the_window_recreates(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    await synced_entry(app, api, tenant, inst, changed_ago=timedelta(seconds=10))
    assert (await deliver(api, inst, payload("worklog_deleted", timestamp=6_000))).json()["outcome"] == \
        "timetracker_wins"
    row = await entry_row(app, tenant.tenant_id)
    assert row.sync_status == "pending" and row.worklog_id is None and row.base is None and row.due_at is not None


async def test_jira_going_back_to_our_state_dissolves_the_conflict(app, api, tenant):  # type: ignore[no-untyped-def]
    inst = await make_instance(app, tenant.tenant_id)
    await synced_entry(app, api, tenant, inst)
    assert (await deliver(api, inst, payload(seconds=7200, updated_ms=5_000))).json()["outcome"] == "jira_wins"
    assert (await deliver(api, inst, payload(seconds=5400, updated_ms=7_000))).json()["outcome"] == "ignore"
    row = await entry_row(app, tenant.tenant_id)
    assert row.sync_status == "synced"
    assert [c.status for c in await conflicts_of(app, tenant.tenant_id)] == ["resolved"]
