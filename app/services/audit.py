"""Audit rows for JIRA calls: one row per request that went out (CONTRACT section 8), never a secret."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories.entries import add_audit
from app.jira.calls import JiraCall


class CallLog:
    """Collects the JIRA calls of one use case (pass it as `on_call`), to be written in its transaction."""

    def __init__(self) -> None:
        self.calls: list[JiraCall] = []

    async def __call__(self, call: JiraCall) -> None:
        self.calls.append(call)

    def write(self, session: AsyncSession, tenant_id: uuid.UUID, *, entry_id: str | None = None,
              context: str | None = None) -> None:
        audit_calls(session, tenant_id, self.calls, entry_id=entry_id, context=context)
        self.calls.clear()


def audit_calls(session: AsyncSession, tenant_id: uuid.UUID, calls: list[JiraCall], *,
                entry_id: str | None = None, context: str | None = None) -> None:
    """One `jira.<operation>` row per call; `JiraCall` carries no query string and no credentials."""
    for call in calls:
        detail = f"{call.method} {call.path}" + (f": {call.detail}" if call.detail else "")
        add_audit(
            session, tenant_id=tenant_id, action=f"jira.{call.operation}", outcome=call.outcome,
            entry_id=entry_id, jira_instance_id=call.instance_id, http_status=call.status,
            detail=f"{context}: {detail}" if context else detail, duration_ms=call.duration_ms,
        )
