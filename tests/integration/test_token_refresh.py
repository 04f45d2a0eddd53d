"""Renewing OAuth 2.0 access tokens (CONTRACT 12 and 13): ahead of expiry, after a 401, one renewal per connection
at a time across processes (a Redis lock and a re-read of the stored pair), the new pair stored before it is used,
`invalid_grant` → `auth_required`, and a lost answer.

Against the simulator's Data Center provider, and — for what only Jira Cloud's rotating tokens do (a replaced token
accepted again for 10 minutes) — `RefreshingBearer` on real Redis with a token endpoint that behaves like Atlassian's.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db.models import AuditRow, ConnectionRow, JiraInstanceRow
from app.jira.calls import OnCall
from app.jira.client import JiraTarget
from app.jira.errors import AuthRejected, TokenRefused, TransientError
from app.jira.gate import InstanceRef
from app.jira.token_refresh import RefreshingBearer, RefreshPolicy, StoredGrant, TokenPair
from jirasim.testing import SimServer
from tests.e2e.conftest import JiraSetup
from tests.waiting import wait_until


async def _rows(app: Any, setup: JiraSetup, user: str = "jdoe") -> tuple[JiraInstanceRow, ConnectionRow]:
    async with app.state.sessionmaker() as session:
        instance = await session.get(JiraInstanceRow, uuid.UUID(setup.instance_id))
        connection = (await session.execute(select(ConnectionRow).where(
            ConnectionRow.jira_instance_id == uuid.UUID(setup.instance_id), ConnectionRow.user == user))).scalar_one()
    assert instance is not None
    return instance, connection


def _target(app: Any, instance: JiraInstanceRow, connection: ConnectionRow) -> JiraTarget:
    target = app.state.credentials.user_target(instance, connection)
    assert target is not None
    return target


def _requests(sim: SimServer, setup: JiraSetup) -> list[tuple[str, int]]:
    return [(e["path"].rsplit("/", 1)[-1], e["status"]) for e in sim.control.log(setup.sim_name)
            if not e["path"].endswith("/authorize")]


async def _lookup(api: httpx.AsyncClient, setup: JiraSetup, key: str = "PROJ-2") -> httpx.Response:
    return await api.get(f"/api/v1/jira-instances/{setup.instance_id}/tickets/{key}?user=jdoe", headers=setup.headers)


async def test_an_access_token_jira_refuses_is_renewed_once_and_the_request_repeated(
    api: httpx.AsyncClient, app: Any, jira_setup: Any, connect_user: Any, sim: SimServer,
) -> None:
    setup: JiraSetup = await jira_setup(auth="oauth2")
    await connect_user(setup, "jdoe", jira_user="alice")
    _, before = await _rows(app, setup)
    sim.control.reset(setup.sim_name, state=False, counters=True)
    assert sim.control.expire_oauth2_tokens(setup.sim_name, user="alice") == 1
    r = await _lookup(api, setup)
    assert r.status_code == 200, r.text
    assert _requests(sim, setup) == [("PROJ-2", 401), ("token", 200), ("PROJ-2", 200)]
    counts = sim.control.oauth2_tokens(setup.sim_name)["counts"]
    assert counts["refreshes"] == 1 and counts.get("refresh_reuse", 0) == 0
    _, after = await _rows(app, setup)
    assert after.access_token_enc != before.access_token_enc and after.refresh_token_enc != before.refresh_token_enc
    assert after.refresh_started_at is None and after.status == "connected"
    assert after.refresh_due_at is not None and before.refresh_due_at is not None
    assert after.refresh_due_at > before.refresh_due_at
    async with app.state.sessionmaker() as session:
        audit = [a.action for a in (await session.execute(select(AuditRow).where(
            AuditRow.tenant_id == setup.tenant.tenant_id))).scalars()]
    assert "jira.refresh_access_token" in audit


async def test_a_token_due_is_renewed_before_the_request_goes_out(
    api: httpx.AsyncClient, app: Any, jira_setup: Any, connect_user: Any, sim: SimServer,
) -> None:
    # tokens living 4 s are due for renewal after 2 s (halfway)
    setup: JiraSetup = await jira_setup(auth="oauth2", sim_extra={"oauth2": {"access_token_seconds": 4}})
    await connect_user(setup, "jdoe", jira_user="alice")
    _, connection = await _rows(app, setup)
    assert connection.refresh_due_at is not None
    due = connection.refresh_due_at
    await wait_until(lambda: datetime.now(UTC) >= due, timeout=10, interval=0.1)
    sim.control.reset(setup.sim_name, state=False, counters=True)
    assert (await _lookup(api, setup)).status_code == 200
    assert _requests(sim, setup) == [("token", 200), ("PROJ-2", 200)]  # no 401: renewed ahead of expiry


async def test_concurrent_renewals_of_one_connection_are_single_flight(
    app: Any, jira_setup: Any, connect_user: Any, sim: SimServer,
) -> None:
    """Eight processes meet the same expired token at once: each holds its own copy of the pair (as a worker
    process would); one renews, the others wait for it and take the renewed pair from the database."""
    setup: JiraSetup = await jira_setup(auth="oauth2")
    await connect_user(setup, "jdoe", jira_user="alice")
    instance, connection = await _rows(app, setup)
    targets = [_target(app, instance, connection) for _ in range(8)]
    sim.control.expire_oauth2_tokens(setup.sim_name, user="alice")
    users = await asyncio.gather(*(app.state.jira.myself(t) for t in targets))
    assert [u.name for u in users] == ["alice"] * 8
    counts = sim.control.oauth2_tokens(setup.sim_name)["counts"]
    assert counts["refreshes"] == 1 and counts.get("refresh_reuse", 0) == 0
    # and every one of them now holds the renewed pair: no further renewal, no further 401
    before = len(sim.control.log(setup.sim_name))
    await asyncio.gather(*(app.state.jira.myself(t) for t in targets))
    assert [e["status"] for e in sim.control.log(setup.sim_name)[before:]] == [200] * 8


async def test_a_revoked_grant_makes_the_connection_auth_required(
    api: httpx.AsyncClient, app: Any, jira_setup: Any, connect_user: Any, sim: SimServer,
) -> None:
    setup: JiraSetup = await jira_setup(auth="oauth2")
    await connect_user(setup, "jdoe", jira_user="alice")
    sim.control.revoke_oauth2_tokens(setup.sim_name, user="alice")
    r = await _lookup(api, setup)
    assert r.status_code == 409 and "reconnect" in r.json()["detail"] and "oauth/start" in r.json()["detail"]
    assert [s for _, s in _requests(sim, setup)][-2:] == [401, 400]  # the request, then the refused renewal
    _, connection = await _rows(app, setup)
    assert connection.status == "auth_required"
    async with app.state.sessionmaker() as session:
        rejected = (await session.execute(select(AuditRow).where(
            AuditRow.tenant_id == setup.tenant.tenant_id, AuditRow.action == "auth.token_rejected"))).scalar_one()
    assert "invalid_grant" in (rejected.detail or "")
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"  # a new consent starts over
    assert (await _lookup(api, setup, "PROJ-3")).status_code == 200


async def test_a_lost_renewal_answer_on_data_center(
    api: httpx.AsyncClient, app: Any, jira_setup: Any, connect_user: Any, sim: SimServer,
) -> None:
    """JIRA renewed the pair but its answer never arrived: the old tokens are gone on Data Center, which refuses the
    spent refresh token when it is presented again (without revoking anything) — the user reconnects."""
    setup: JiraSetup = await jira_setup(auth="oauth2")
    await connect_user(setup, "jdoe", jira_user="alice")
    sim.control.add_fault_rule(setup.sim_name, "fail_after_write", mode="drop", path_contains="/oauth2/latest/token")
    sim.control.expire_oauth2_tokens(setup.sim_name, user="alice")
    r = await _lookup(api, setup)
    assert r.status_code == 502 and "could not be reached" in r.json()["detail"]
    _, connection = await _rows(app, setup)
    assert connection.status == "connected" and connection.refresh_started_at is not None  # the mark stays
    r = await _lookup(api, setup, "PROJ-3")
    assert r.status_code == 409 and "reconnect" in r.json()["detail"]
    assert sim.control.oauth2_tokens(setup.sim_name)["counts"]["refresh_reuse"] == 1
    assert await connect_user(setup, "jdoe", jira_user="alice") == "connected"
    _, connection = await _rows(app, setup)
    assert connection.refresh_started_at is None


# -- Jira Cloud's rotation rules, on the same RefreshingBearer -------------------------------------------------------


@dataclass
class Store:
    """A connection's pair as the database would hold it."""

    grant: StoredGrant | None
    saves: list[TokenPair] = field(default_factory=list)

    async def load(self) -> StoredGrant | None:
        return self.grant

    async def mark_refresh(self, at: datetime | None) -> None:
        assert self.grant is not None
        self.grant = StoredGrant(self.grant.pair, at)

    async def save(self, pair: TokenPair) -> bool:
        self.saves.append(pair)
        self.grant = StoredGrant(pair, None)
        return True


@dataclass
class Atlassian:
    """A token endpoint with Atlassian's rotation: the token just replaced is accepted again for a while."""

    answers: list[TokenPair | Exception]
    presented: list[str] = field(default_factory=list)

    async def refresh(self, refresh_token: str, *, on_call: OnCall | None) -> TokenPair:
        self.presented.append(refresh_token)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


NOW = datetime.now(UTC)
LEEWAY = timedelta(minutes=10)


def _pair(n: int, *, due_in: timedelta = timedelta(minutes=-1)) -> TokenPair:
    return TokenPair(f"access-{n}", f"refresh-{n}", NOW + due_in + timedelta(minutes=5), NOW + due_in)


def _bearer(redis: Any, store: Store, endpoint: Atlassian, *, at: datetime = NOW) -> RefreshingBearer:
    assert store.grant is not None
    policy = RefreshPolicy(lock_key=f"ttsync:refresh:{{test-{uuid.uuid4()}}}", lock_seconds=5, wait_seconds=5,
                           reuse_leeway=LEEWAY)
    return RefreshingBearer(store.grant.pair, store=store, endpoint=endpoint, redis=redis, policy=policy,
                            kind="3lo", clock=lambda: at)


LOST = TransientError("connection to JIRA failed: RemoteProtocolError", maybe_applied=True)


async def test_a_lost_answer_is_recovered_within_the_leeway_with_the_same_token(redis: Any) -> None:
    store, endpoint = Store(StoredGrant(_pair(1), None)), Atlassian([LOST, _pair(2, due_in=timedelta(minutes=50))])
    first = _bearer(redis, store, endpoint)
    with pytest.raises(TransientError):
        await first.renew_after_rejection(None)
    assert store.grant is not None and store.grant.refresh_started_at == NOW  # the refresh token may be spent
    later = _bearer(redis, store, endpoint, at=NOW + timedelta(minutes=3))  # another process, a retry
    await later.prepare(None)
    assert endpoint.presented == ["refresh-1", "refresh-1"]  # the replaced token, once more, within the leeway
    assert store.grant == StoredGrant(_pair(2, due_in=timedelta(minutes=50)), None)  # stored before use
    assert later.authorization("GET", "", b"") == "Bearer access-2"


async def test_after_the_leeway_a_possibly_spent_token_is_never_presented(redis: Any) -> None:
    store, endpoint = Store(StoredGrant(_pair(1), NOW - timedelta(minutes=11))), Atlassian([])
    with pytest.raises(AuthRejected) as info:
        await _bearer(redis, store, endpoint).prepare(None)
    assert info.value.oauth_problem == "renewal_lost" and endpoint.presented == []  # the consent survives


async def test_a_renewal_that_never_left_clears_its_mark(redis: Any) -> None:
    refused = TransientError("cannot connect to JIRA", maybe_applied=False)
    store, endpoint = Store(StoredGrant(_pair(1, due_in=timedelta(minutes=-1)), None)), Atlassian([refused])
    bearer = _bearer(redis, store, endpoint)
    await bearer.prepare(None)  # the access token still lives for 4 minutes: go on with it
    assert bearer.authorization("GET", "", b"") == "Bearer access-1"
    assert store.grant is not None and store.grant.refresh_started_at is None and store.saves == []


async def test_a_refused_renewal_is_auth_rejected_with_the_servers_reason(redis: Any) -> None:
    refused = TokenRefused("JIRA refused the token request: invalid_grant", error="invalid_grant",
                           description="Unknown or invalid refresh token.", status=403)
    store, endpoint = Store(StoredGrant(_pair(1), None)), Atlassian([refused])
    with pytest.raises(AuthRejected) as info:
        await _bearer(redis, store, endpoint).renew_after_rejection(None)
    assert info.value.oauth_problem == "invalid_grant" and "connect again" in info.value.message


async def test_a_pair_renewed_by_another_process_is_taken_as_it_is(redis: Any) -> None:
    store, endpoint = Store(StoredGrant(_pair(2, due_in=timedelta(minutes=50)), None)), Atlassian([])
    stale = RefreshingBearer(_pair(1), store=store, endpoint=endpoint, redis=redis,
                             policy=RefreshPolicy("ttsync:refresh:{test-stale}", 5, 5, LEEWAY), clock=lambda: NOW)
    await stale.renew_after_rejection(None)
    assert endpoint.presented == [] and stale.authorization("GET", "", b"") == "Bearer access-2"


def test_a_target_never_shows_its_tokens() -> None:
    target = JiraTarget(InstanceRef(uuid.uuid4(), 10), "https://jira.example.test",
                        RefreshingBearer(_pair(7), store=Store(None), endpoint=Atlassian([]), redis=None,  # type: ignore[arg-type]
                                         policy=RefreshPolicy("k", 1, 1)))
    assert "access-7" not in repr(target) and "refresh-7" not in repr(target)
    assert "access-7" not in repr(target.credential)
