"""Each way a Data Center instance connects its users (CONTRACT 13), end to end with real workers and the simulator:
connect, sync 20 entries, JIRA revokes the access → `auth_required` (a notification, no attempts spent) → the user
reconnects → everything synced, one worklog per entry; and no secret of the kind in a database dump, in the logs of
the API and of the workers (at DEBUG), or in Redis.

OAuth 2.0 adds: the access tokens expire mid-backlog while two workers push, and exactly one renewal happens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jirasim.testing import SimServer
from tests.e2e.conftest import JiraSetup, revoke_access
from tests.e2e.engine_support import entry, statuses, wait_until, worklogs_by_anchor
from tests.leaks import captured_logs, database_dump, redis_dump


async def _all(app: Any, setup: JiraSetup, ids: list[str], status: str) -> bool:
    found = await statuses(app, setup.tenant.tenant_id)
    return all(found.get(i) == status for i in ids)


def _secrets(sim: SimServer, setup: JiraSetup) -> dict[str, str]:
    """Every credential JIRA (the simulator) handed out for this instance, by a name for the failure message."""
    state = sim.sim.instances[setup.sim_name].state
    found = {f"extra {k}": str(v) for k, v in setup.extra.items()}
    for i, token in enumerate(state.access_tokens.values()):
        found[f"oauth1 access token {i}"], found[f"oauth1 token secret {i}"] = token.token, token.secret
    for i, request in enumerate(state.request_tokens.values()):
        found[f"oauth1 request token secret {i}"] = request.secret
    for i, value in enumerate([*state.oauth2_access, *state.oauth2_refresh, *state.oauth2_codes]):
        found[f"oauth2 token or code {i}"] = value
    for i, value in enumerate(state.pats):
        found[f"personal access token {i}"] = value
    return found


@pytest.mark.parametrize("auth", ["oauth1", "pat", "oauth2"])
async def test_connect_sync_revoke_reconnect_and_no_secret_anywhere(
    api: Any, app: Any, sim: SimServer, jira_setup: Any, connect_user: Any, workers: Any, redis: Any, settings: Any,
    tmp_path: Path, auth: str,
) -> None:
    with captured_logs() as api_logs:
        setup: JiraSetup = await jira_setup(auth=auth, issues=[{"key": f"PROJ-{i}"} for i in range(1, 11)])
        assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
        worker_logs = tmp_path / "workers.log"
        workers(2, output=worker_logs, LOG_LEVEL="DEBUG", LOG_FORMAT="json")

        first = [f"{auth}-{i}" for i in range(20)]
        for n, entry_id in enumerate(first):
            body = entry(ticket=f"PROJ-{n % 10 + 1}", duration=15 + n)
            assert (await api.put(f"/api/v1/entries/{entry_id}", json=body, headers=setup.headers)).status_code == 202
            if auth == "oauth2" and n == 9:
                sim.control.expire_oauth2_tokens(setup.sim_name, user="alice")  # mid-backlog
        await wait_until(lambda: _all(app, setup, first, "synced"), timeout=60)
        if auth == "oauth2":
            counts = sim.control.oauth2_tokens(setup.sim_name)["counts"]
            # ten pushes met the expired token in two worker processes: one renewal served them all
            assert counts["refreshes"] == 1 and counts.get("refresh_reuse", 0) == 0, counts

        assert revoke_access(sim.control, setup, "alice") >= 1
        parked = [f"{auth}-late-{i}" for i in range(3)]
        for n, entry_id in enumerate(parked):
            body = entry(ticket="PROJ-1", duration=40 + n)
            assert (await api.put(f"/api/v1/entries/{entry_id}", json=body, headers=setup.headers)).status_code == 202
        await wait_until(lambda: _all(app, setup, parked, "auth_required"), timeout=60)
        for entry_id in parked:
            sync = (await api.get(f"/api/v1/entries/{entry_id}", headers=setup.headers)).json()["sync"]
            assert sync["attempts"] == 0 and "connect" in sync["last_error"]
        connections = (await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)).json()
        assert [(c["auth"], c["status"]) for c in connections] == [(auth, "auth_required")]
        notes = (await api.get("/api/v1/notifications?user=jdoe&unread=true", headers=setup.headers)).json()
        assert [n["kind"] for n in notes] == ["auth_required"]

        assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
        await wait_until(lambda: _all(app, setup, first + parked, "synced"), timeout=60)
        for entry_id in parked:
            assert (await api.get(f"/api/v1/entries/{entry_id}", headers=setup.headers)).json()["sync"]["attempts"] == 1
        found = worklogs_by_anchor(sim.control, setup.sim_name)
        assert sorted(found) == sorted(first + parked)
        assert all(len(w) == 1 and w[0]["author"]["name"] == "alice" for w in found.values())
        # what JIRA saw: every request of ours it accepted was authenticated the instance's way
        kinds = {e["auth"] for e in sim.control.log(setup.sim_name)
                 if "/rest/api/2/" in e["path"] and 200 <= e["status"] < 300}
        assert kinds == {auth}

    secrets = _secrets(sim, setup)
    assert len(secrets) >= 2
    places = {"database dump": database_dump(settings, tmp_path), "API logs": api_logs.getvalue(),
              "worker logs": worker_logs.read_text(errors="replace"), "Redis": await redis_dump(redis)}
    assert all(places.values()) and f"{auth}-late-0" in places["worker logs"]  # each place was really read
    for place, text in places.items():
        for name, value in secrets.items():
            assert value not in text, f"{name} in the {place}"
