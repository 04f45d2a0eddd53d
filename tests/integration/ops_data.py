"""Test data for the operations tests: JIRA instance rows, entries in a given sync state, audit rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from app.db.models import AuditRow, EntryRow


async def add_instance(api: Any, tenant: Any, *, name: str = "Main JIRA", rate: int = 10,
                       project_keys: tuple[str, ...] = ("PROJ",)) -> uuid.UUID:
    """An instance created through the instances API (a generated key pair, secrets sealed to their rows);
    its JIRA is never called here."""
    r = await api.post("/api/v1/jira-instances", headers={"Authorization": f"Bearer {tenant.api_key}"}, json={
        "name": name, "base_url": "http://127.0.0.1:9/jira", "rate_limit_per_second": rate,
        "project_keys": list(project_keys)})
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["id"])


def entry_body(ticket: str = "PROJ-1", **extra: Any) -> dict[str, Any]:
    body = {"user": "jdoe", "ticket": ticket, "date": "2026-11-25", "start": "09:00", "duration": 30,
            "description": "work"}
    body.update(extra)
    return body


async def put_entries(api: Any, auth: dict[str, str], ids: list[str], ticket: str = "PROJ-1") -> None:
    for entry_id in ids:
        r = await api.put(f"/api/v1/entries/{entry_id}", json=entry_body(ticket), headers=auth)
        assert r.status_code == 202, r.text


async def set_state(app: Any, tenant_id: uuid.UUID, entry_id: str, *, status: str, instance_id: uuid.UUID | None,
                    last_error: str | None = None, due: bool = False, age_seconds: float = 0.0) -> None:
    """Force an entry into a sync state (what a worker would have left behind)."""
    now = datetime.now(UTC)
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(EntryRow).where(EntryRow.tenant_id == tenant_id, EntryRow.id == entry_id).values(
                sync_status=status, instance_id=instance_id, last_error=last_error,
                due_at=now if due else None, sync_updated_at=now - timedelta(seconds=age_seconds),
            )
        )
        await session.commit()


async def add_push_audits(app: Any, tenant_id: uuid.UUID, instance_id: uuid.UUID,
                          durations_ms: list[int], *, outcome: str = "ok", age_seconds: float = 0.0) -> None:
    async with app.state.sessionmaker() as session:
        for i, ms in enumerate(durations_ms):
            session.add(AuditRow(
                tenant_id=tenant_id, action=("jira.create_worklog", "jira.update_worklog")[i % 2], outcome=outcome,
                entry_id="a", jira_instance_id=instance_id, http_status=201 if outcome == "ok" else 400,
                detail="POST /rest/api/2/issue/PROJ-1/worklog", duration_ms=ms,
                at=datetime.now(UTC) - timedelta(seconds=age_seconds),
            ))
        await session.commit()
