"""A JIRA world made the way production makes it, for integration tests of JIRA-facing behaviour: an instance
through the instances API on a simulator instance of its own, a user connected through the OAuth dance, worklogs
written by the push engine, JIRA-side edits made in the simulator with the webhook bodies the simulator recorded
for them. Fixtures: `make_jira`, `jira` (tests/integration/conftest.py).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

import httpx
from sqlalchemy import select

from app.db.models import ConflictRow, EntryRow, NotificationRow
from app.domain.worklog import parse_started
from app.security.signatures import sign_hub
from jirasim.testing import SimServer
from tests.e2e.conftest import JiraSetup

ENTRY = {"user": "jdoe", "ticket": "PROJ-123", "date": "2026-11-25", "start": "09:00", "duration": 90,
         "timezone": "Europe/Berlin", "description": "Fix login", "activity": "Development",
         "updated_at": "2026-11-25T10:31:00Z"}
COMMENT = "#4711: Development: Fix login"
ISSUES = [{"key": "PROJ-123", "summary": "Login"}, {"key": "PROJ-1", "summary": "Parent task"}]


@dataclass
class Jira:
    """A tenant's JIRA instance, made through the API on a simulator instance of its own."""

    setup: JiraSetup
    sim: SimServer

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(self.setup.instance_id)

    @property
    def tenant_id(self) -> uuid.UUID:
        return uuid.UUID(str(self.setup.tenant.tenant_id))

    @property
    def webhook_secret(self) -> str:
        return self.setup.webhook_secret

    @property
    def headers(self) -> dict[str, str]:
        return self.setup.headers

    def worklog(self, ticket: str, worklog_id: str) -> dict[str, Any]:
        [found] = [w for w in self.sim.control.worklogs(self.setup.sim_name, ticket) if str(w["id"]) == worklog_id]
        return found

    def last_event(self, worklog_id: str) -> bytes:
        """The body of the last webhook JIRA sent about this worklog (recorded by the simulator)."""
        events = [e for e in self.sim.control.webhook_events(self.setup.sim_name) if str(e["worklogId"]) == worklog_id]
        return json.dumps(events[-1]["payload"]).encode()

    def remote_edit(self, worklog_id: str, **changes: Any) -> bytes:
        """A person edits the worklog in JIRA; returns JIRA's webhook body for it."""
        self.sim.control.remote_edit(self.setup.sim_name, worklog_id, as_user="alice", **changes)
        return self.last_event(worklog_id)

    def remote_delete(self, worklog_id: str) -> bytes:
        self.sim.control.remote_delete(self.setup.sim_name, worklog_id)
        return self.last_event(worklog_id)


async def synced_entry(api: httpx.AsyncClient, pusher: Any, jira: Jira, *, entry_id: str = "4711",
                       **fields: Any) -> dict[str, Any]:
    """An entry PUT through the API and pushed by the push engine; returns its worklog as JIRA holds it."""
    r = await api.put(f"/api/v1/entries/{entry_id}", json={**ENTRY, **fields}, headers=jira.headers)
    assert r.status_code == 202, r.text
    await pusher(jira.tenant_id, entry_id)
    body = (await api.get(f"/api/v1/entries/{entry_id}", headers=jira.headers)).json()
    assert body["sync"]["status"] == "synced", body["sync"]
    return jira.worklog(body["ticket"], body["sync"]["worklog_id"])


def updated_ms(worklog: dict[str, Any]) -> int:
    return int(parse_started(str(worklog["updated"])).timestamp() * 1000)


def rendered(worklog: dict[str, Any], *, hours: int, later_ms: int) -> bytes:
    """JIRA's webhook for the worklog as it is, `started` rendered in another zone, stamped `later_ms` later
    (JIRA renders times in its user's or server's zone: the same instant, other digits)."""
    zone = timezone(timedelta(hours=hours))
    started = parse_started(str(worklog["started"])).astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S.000%z")
    updated = (parse_started(str(worklog["updated"])) + timedelta(milliseconds=later_ms)).astimezone(zone)
    wl = {**worklog, "started": started, "updated": updated.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
          + updated.strftime("%z")}
    return json.dumps({"webhookEvent": "worklog_updated", "timestamp": updated_ms(wl), "worklog": wl}).encode()


async def deliver(api: httpx.AsyncClient, jira: Jira, body: bytes, *, secret: str | None = None,
                  signature: str | None = None) -> Any:
    headers = {"Content-Type": "application/json",
               "X-Hub-Signature": signature or sign_hub(secret or jira.webhook_secret, body)}
    return await api.post(f"/webhooks/jira/{jira.id}", content=body, headers=headers)


async def outcome(api: httpx.AsyncClient, jira: Jira, body: bytes) -> str:
    r = await deliver(api, jira, body)
    assert r.status_code == 200, r.text
    return str(r.json()["outcome"])


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


