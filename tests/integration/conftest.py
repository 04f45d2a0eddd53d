"""Fixtures for integration tests that need state only the service itself should make: JIRA instances made
through the API on the simulator, users connected through the OAuth dance, worklogs written by the push engine.

* `jira_setup`, `connect_user`, `api_without_window`: the e2e fixtures (see tests/e2e/conftest.py); `sim` is
  tests/conftest.py's.
* `pusher` (session): `await pusher(tenant_id, entry_id)` runs the push engine in this process until the entry
  is settled — what a worker does with its job.
* `make_jira` / `jira`: a tenant's JIRA instance on the simulator with TimeTracker user jdoe connected as JIRA
  user alice (`tests/integration/jira_world.py`).
* `api_without_window` (session): see tests/e2e/conftest.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from jirasim.testing import SimServer
from tests.e2e import conftest as e2e
from tests.integration.jira_world import ISSUES, Jira

# the e2e fixtures, for the tests of this package too (`sim` is tests/conftest.py's)
jira_setup = e2e.jira_setup
connect_user = e2e.connect_user
api_without_window = e2e.api_without_window


@pytest.fixture(scope="session")
async def pusher(settings: Any) -> AsyncIterator[Callable[[uuid.UUID, str], Awaitable[None]]]:
    from workers.context import build_context

    wc = build_context(settings)

    async def push(tenant_id: uuid.UUID, entry_id: str) -> None:
        for _ in range(100):
            delay = await wc.push(tenant_id, entry_id)
            if delay is None:
                return
            await asyncio.sleep(min(delay, 0.2))
        raise AssertionError(f"the push of entry {entry_id} did not settle")

    yield push
    await wc.close()


@pytest.fixture
def make_jira(sim: SimServer, jira_setup: Any, connect_user: Any) -> Any:
    async def make(tenant: Any, *, connected: bool = True) -> Jira:
        setup = await jira_setup(tenant=tenant, project_keys=["PROJ"], issues=ISSUES)
        if connected:  # TimeTracker user jdoe writes as JIRA user alice
            assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
        return Jira(setup, sim)

    return make


@pytest.fixture
async def jira(make_jira: Any, tenant: Any) -> Jira:
    jira: Jira = await make_jira(tenant)
    return jira
