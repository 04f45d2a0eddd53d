"""What the connection tests of every credential kind share: starting the OAuth dance through the API, following
its callback, and reading back the tenant's connections and audit trail."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from app.db.models import AuditRow, ConnectionRow
from tests.e2e.conftest import JiraSetup


async def start_authorize(api: httpx.AsyncClient, setup: JiraSetup, user: str = "jdoe", **extra: Any) -> str:
    """`POST …/oauth/start` for `user`; the authorize URL it answers."""
    r = await api.post(f"/api/v1/jira-instances/{setup.instance_id}/oauth/start", json={"user": user, **extra},
                       headers=setup.headers)
    assert r.status_code == 200, r.text
    return str(r.json()["authorize_url"])


def callback_path(location: str, expected_path: str) -> str:
    """The path and query of a redirect to our callback (asserting it is the callback `expected_path`)."""
    parts = urlsplit(location)
    assert parts.path == expected_path, location
    return f"{parts.path}?{parts.query}"


async def connections_of(app: Any, setup: JiraSetup) -> list[ConnectionRow]:
    async with app.state.sessionmaker() as session:
        return list((await session.execute(select(ConnectionRow).where(
            ConnectionRow.tenant_id == setup.tenant.tenant_id))).scalars())


async def audit_of(app: Any, setup: JiraSetup) -> list[AuditRow]:
    """The tenant's audit trail, oldest first."""
    async with app.state.sessionmaker() as session:
        return list((await session.execute(select(AuditRow).where(
            AuditRow.tenant_id == setup.tenant.tenant_id).order_by(AuditRow.id))).scalars())
