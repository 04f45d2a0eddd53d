"""A revoked JIRA token parks entries as `auth_required` (no attempts spent) until the user reconnects."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.engine_support import entry, wait_until


async def status_of(api, setup, entry_id, wanted):
    body = (await api.get(f"/api/v1/entries/{entry_id}", headers=setup.headers)).json()
    return body if body["sync"]["status"] == wanted else None


async def test_revoked_token_parks_entries_then_reconnect_syncs_them(api, sim, jira_setup, connect_user, workers):
    setup = await jira_setup()
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    workers(1)
    await api.put("/api/v1/entries/a1", json=entry(ticket="PROJ-1"), headers=setup.headers)
    await wait_until(lambda: status_of(api, setup, "a1", "synced"), timeout=30)

    assert sim.control.revoke(setup.sim_name, user="alice") >= 1
    t0 = time.time()
    for i in (2, 3):
        await api.put(f"/api/v1/entries/a{i}", json=entry(ticket="PROJ-4", duration=20 + i), headers=setup.headers)
    parked = [await wait_until(lambda i=i: status_of(api, setup, f"a{i}", "auth_required"), timeout=30)
              for i in (2, 3)]
    for body in parked:
        assert body["sync"]["attempts"] == 0
        assert "reconnect" in body["sync"]["last_error"] or "connect" in body["sync"]["last_error"]
    # at most the pushes already on their way met the 401; after it the connection is known to be rejected (the
    # reconciliation poller's own requests are not pushes: it may meet the 401 too)
    def pushes_rejected() -> list[dict[str, Any]]:
        return [r for r in sim.control.log(setup.sim_name, since=t0)
                if r["status"] == 401 and "/rest/api/2/issue/" in r["path"]]

    rejected = pushes_rejected()
    assert 1 <= len(rejected) <= 2
    await api.put("/api/v1/entries/a4", json=entry(ticket="PROJ-4", duration=40), headers=setup.headers)
    await wait_until(lambda: status_of(api, setup, "a4", "auth_required"), timeout=30)
    assert len(pushes_rejected()) == len(rejected)
    connections = (await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)).json()
    assert [c["status"] for c in connections] == ["auth_required"]
    notes = (await api.get("/api/v1/notifications", params={"user": "jdoe", "unread": "true"},
                           headers=setup.headers)).json()
    assert [n["kind"] for n in notes] == ["auth_required"]

    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    for i in (2, 3, 4):
        body = await wait_until(lambda i=i: status_of(api, setup, f"a{i}", "synced"), timeout=30)
        assert body["sync"]["attempts"] == 1  # the successful write; the parked time spent none
    logs = sim.control.worklogs(setup.sim_name, "PROJ-4")
    assert sorted(w["timeSpentSeconds"] for w in logs) == [22 * 60, 23 * 60, 40 * 60]
