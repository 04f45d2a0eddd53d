"""Each way an instance connects its users (CONTRACT 12, 13), end to end with real workers and the simulator:
connect, sync 20 entries, JIRA revokes the access → `auth_required` (a notification, no attempts spent) → the user
reconnects → everything synced, one worklog per entry; and no secret of the kind in a database dump, in the logs of
the API and of the workers (at DEBUG), or in Redis.

OAuth 2.0 (Data Center) and 3LO (Jira Cloud) add: the access tokens expire mid-backlog while the workers push (four
processes on Cloud), and exactly one renewal happens (Atlassian's reuse detection never fires); on Cloud every
worklog carries its property, the revocation shows as `invalid_grant` at the next renewal, and the connection's
consent ends a year after it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
    platform = sim.sim.atlassian
    for i, value in enumerate([*platform.access_tokens, *platform.refresh_tokens, *platform.codes]):
        found[f"atlassian token or code {i}"] = value
    return found


def _refused_renewals(sim: SimServer) -> int:
    return int(sim.control.atlassian_counters()["oauth"].get("invalid_grant", 0))


def _oauth_counts(sim: SimServer, setup: JiraSetup) -> dict[str, int]:
    if setup.auth == "3lo":
        return dict(sim.control.atlassian_counters()["oauth_by_user"].get("alice", {}))
    return dict(sim.control.oauth2_tokens(setup.sim_name)["counts"])


@pytest.mark.parametrize("auth", ["oauth1", "pat", "oauth2", "3lo"])
async def test_connect_sync_revoke_reconnect_and_no_secret_anywhere(
    api: Any, app: Any, sim: SimServer, jira_setup: Any, connect_user: Any, workers: Any, redis: Any, settings: Any,
    tmp_path: Path, auth: str,
) -> None:
    with captured_logs() as api_logs:
        setup: JiraSetup = await jira_setup(auth=auth, issues=[{"key": f"PROJ-{i}"} for i in range(1, 11)])
        assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
        worker_logs = tmp_path / "workers.log"
        workers(4 if auth == "3lo" else 2, output=worker_logs, LOG_LEVEL="DEBUG", LOG_FORMAT="json")
        refreshing = auth in ("oauth2", "3lo")
        before = _oauth_counts(sim, setup) if refreshing else {}

        first = [f"{auth}-{i}" for i in range(20)]
        for n, entry_id in enumerate(first):
            body = entry(ticket=f"PROJ-{n % 10 + 1}", duration=15 + n)
            assert (await api.put(f"/api/v1/entries/{entry_id}", json=body, headers=setup.headers)).status_code == 202
            if n == 9 and auth == "oauth2":
                sim.control.expire_oauth2_tokens(setup.sim_name, user="alice")  # mid-backlog
            if n == 9 and auth == "3lo":
                sim.control.expire_atlassian_tokens(user="alice")
        await wait_until(lambda: _all(app, setup, first, "synced"), timeout=60)
        if refreshing:
            counts = _oauth_counts(sim, setup)
            # ten pushes met the expired token in several worker processes: one renewal served them all, and no
            # replaced refresh token was ever presented again
            grew = {k: counts.get(k, 0) - before.get(k, 0) for k in
                    ("refreshes", "refresh_reuse", "reuse_within_interval", "reuse_detected")}
            assert grew == {"refreshes": 1, "refresh_reuse": 0, "reuse_within_interval": 0, "reuse_detected": 0}, counts

        refused_before = _refused_renewals(sim)
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
        if auth == "3lo":  # Atlassian refused the next renewal (invalid_grant): the consent is gone
            assert _refused_renewals(sim) > refused_before
        if refreshing:  # the stats count the renewals of every worker: one renewed, then one refused
            async def renewals() -> dict[str, int] | None:
                [site] = (await api.get("/api/v1/stats", headers=setup.headers)).json()["instances"]
                counts = site["token_refreshes"]
                return counts if counts.get("renewed", 0) >= 1 and counts.get("refused", 0) >= 1 else None

            await wait_until(renewals, timeout=20, interval=0.5)
        notes = (await api.get("/api/v1/notifications?user=jdoe&unread=true", headers=setup.headers)).json()
        assert [n["kind"] for n in notes] == ["auth_required"]

        assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
        await wait_until(lambda: _all(app, setup, first + parked, "synced"), timeout=60)
        for entry_id in parked:
            assert (await api.get(f"/api/v1/entries/{entry_id}", headers=setup.headers)).json()["sync"]["attempts"] == 1
        found = worklogs_by_anchor(sim.control, setup.sim_name)
        assert sorted(found) == sorted(first + parked)
        alice = sim.control.atlassian()["accounts"]["alice"] if auth == "3lo" else "alice"
        assert all(len(w) == 1 and _author(w[0]) == alice for w in found.values())
        if auth == "3lo":
            tenant = str(setup.tenant.tenant_id)
            assert all(w[0]["properties"] == [{"key": "timetracker", "value": {"tenant": tenant, "entry": entry_id}}]
                       for entry_id, w in found.items())
            [connection] = (await api.get("/api/v1/users/jdoe/connections", headers=setup.headers)).json()
            consent_ends = datetime.fromisoformat(connection["expires_at"]) - datetime.now(UTC)
            assert timedelta(days=364) < consent_ends <= timedelta(days=365)
            instance = (await api.get(f"/api/v1/jira-instances/{setup.instance_id}", headers=setup.headers)).json()
            assert instance["cloud_id"] == sim.cloud_id(setup.sim_name)
        # what JIRA saw: every request of ours it accepted was authenticated the instance's way
        kinds = {e["auth"] for e in sim.control.log(setup.sim_name)
                 if "/rest/api/2/" in e["path"] and 200 <= e["status"] < 300}
        assert kinds == {auth}

    secrets = _secrets(sim, setup)
    if auth == "3lo":
        secrets["the service's 3LO app secret"] = settings.atlassian_client_secret
    assert len(secrets) >= 2
    places = {"database dump": database_dump(settings, tmp_path), "API logs": api_logs.getvalue(),
              "worker logs": worker_logs.read_text(errors="replace"), "Redis": await redis_dump(redis)}
    # each place was really read (each worker logs its start)
    assert all(places.values()) and places["worker logs"].count(" started") >= 2
    for place, text in places.items():
        for name, value in secrets.items():
            assert value not in text, f"{name} in the {place}"


def _author(worklog: dict[str, Any]) -> str:
    author = worklog["author"]
    return str(author.get("name") or author["accountId"])
