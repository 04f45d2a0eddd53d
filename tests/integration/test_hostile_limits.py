"""Limits of CONTRACT 11 at the API: the per-tenant rate (429 + Retry-After, webhooks count, 0 turns it off),
the optional metrics token, and sync_queue_length for every known instance, zeros included."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.api.tenant_rate import TenantRateLimit
from app.security.signatures import sign_timetracker
from tests.integration.ops_data import add_instance


@contextlib.contextmanager
def swapped(state: Any, name: str, value: Any) -> Iterator[Any]:
    """`app.state.<name>` replaced for a while (starlette's State does not suit monkeypatch)."""
    saved = getattr(state, name)
    setattr(state, name, value)
    try:
        yield value
    finally:
        setattr(state, name, saved)


@pytest.fixture
def slow_tenant_rate(app: Any, redis: Any) -> Iterator[TenantRateLimit]:
    """One request per second per tenant (bursts of two) for this test."""
    with swapped(app.state, "tenant_rate", TenantRateLimit(redis, 1)) as limit:
        yield limit


async def test_a_tenant_over_its_rate_gets_429_with_retry_after_and_others_do_not(
    api: httpx.AsyncClient, make_tenant: Any, slow_tenant_rate: TenantRateLimit,
) -> None:
    busy, quiet = await make_tenant("Busy"), await make_tenant("Quiet")
    busy_auth = {"Authorization": f"Bearer {busy.api_key}"}
    answers = [(await api.get("/api/v1/entries", headers=busy_auth)) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]  # a burst of twice the rate, then refused
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert "more than 1 requests per second" in answers[2].json()["detail"]
    quiet_answer = await api.get("/api/v1/entries", headers={"Authorization": f"Bearer {quiet.api_key}"})
    assert quiet_answer.status_code == 200


async def test_webhooks_count_for_their_tenant_and_unsigned_ones_do_not(
    api: httpx.AsyncClient, tenant: Any, slow_tenant_rate: TenantRateLimit,
) -> None:
    path = f"/webhooks/timetracker/{tenant.tenant_id}"
    for _ in range(5):  # unsigned: refused before counting, so nobody can spend another tenant's budget
        assert (await api.post(path, content=b"{}", headers={"X-TimeTracker-Signature": "t=1,v1=00"})).status_code \
            == 401
    statuses = []
    for i in range(3):
        body = json.dumps({"event": "entry.deleted", "entry": {"id": f"w{i}"}}).encode()
        r = await api.post(path, content=body, headers={
            "X-TimeTracker-Signature": sign_timetracker(tenant.webhook_secret, body),
            "X-TimeTracker-Delivery": uuid.uuid4().hex, "Content-Type": "application/json"})
        statuses.append(r.status_code)
    assert statuses == [202, 202, 429]


async def test_a_rate_of_zero_turns_the_limit_off(app: Any, api: httpx.AsyncClient, redis: Any,
                                                  auth: dict[str, str]) -> None:
    with swapped(app.state, "tenant_rate", TenantRateLimit(redis, 0)):
        assert {(await api.get("/api/v1/entries", headers=auth)).status_code for _ in range(20)} == {200}


async def test_metrics_token_when_set(app: Any, api: httpx.AsyncClient, settings: Any) -> None:
    with swapped(app.state, "settings", settings.model_copy(update={"metrics_token": "s3cret-token"})):
        await _metrics_need_the_token(api)


async def _metrics_need_the_token(api: httpx.AsyncClient) -> None:
    assert (await api.get("/metrics")).status_code == 401
    assert (await api.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await api.get("/metrics", headers={"Authorization": "Bearer s\xe9cret".encode("latin-1")})).status_code \
        == 401
    assert (await api.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})).status_code == 200


async def test_sync_queue_length_reports_every_known_instance_with_zeros(app: Any, api: httpx.AsyncClient,
                                                                          tenant: Any) -> None:
    instance_id = await add_instance(api, tenant, name="Idle")
    text = (await api.get("/metrics")).text
    for priority in ("user", "batch"):
        assert f'sync_queue_length{{instance="{instance_id}",priority="{priority}"}} 0.0' in text


async def test_api_processes_ask_redis_for_admissions_ahead_and_never_admit_more_than_the_rate(redis: Any) -> None:
    """Two API processes of one tenant at 100/s (bursts of 200): a busy tenant's admissions are asked for ahead (up
    to a twentieth of a second's worth: one round trip per five requests), and together the processes admit no more
    than the tenant's budget."""
    import time

    first, second = TenantRateLimit(redis, 100), TenantRateLimit(redis, 100)
    calls = 0
    for limit in (first, second):
        script = limit._script

        async def counted(*args: Any, _script: Any = script, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return await _script(*args, **kwargs)

        limit._script = counted  # type: ignore[assignment]
    tenant_id = uuid.uuid4()
    started = time.monotonic()
    admitted = 0
    for _ in range(90):  # inside the burst: everything is admitted
        admitted += sum([await limit.check(tenant_id) is None for limit in (first, second)])
    assert admitted == 180 and calls <= 180 // 5 + 8  # 1, 2, 4, then 5 at a time
    refused = 0
    for _ in range(200):  # past the burst: refusals, and never more admitted than the budget so far
        refused += sum([await limit.check(tenant_id) is not None for limit in (first, second)])
    admitted += 400 - refused
    # what Redis granted and nobody used yet (at most one twentieth of a second's rate per process) counts too
    assert refused > 0
    assert admitted <= 200 + 100 * (time.monotonic() - started) + 2 * 5


async def test_admissions_held_ahead_and_left_unused_are_given_back(redis: Any, monkeypatch: Any) -> None:
    """A quiet tenant's admissions held ahead expire unused: they go back to the tenant's budget with the next call,
    so it is charged for the requests it sent, not for what was held for it."""
    from app.api import tenant_rate

    limit = TenantRateLimit(redis, 100)  # bursts of 200
    tenant_id = uuid.uuid4()
    for _ in range(20):  # busy for a moment: the process asks for five at a time
        assert await limit.check(tenant_id) is None
    monkeypatch.setattr(tenant_rate, "HOLD_SECONDS", 0.0)  # from now on, what is held expires before it is used
    assert [await limit.check(tenant_id) for _ in range(175)] == [None] * 175
    # 195 requests admitted out of a budget of 200 (plus what time added): without giving back, they were charged
    # up to five each and refused long before
    # and the budget does end (how soon depends on what time adds meanwhile on a busy machine, not asserted)
    refusal = None
    for _ in range(5000):
        if (refusal := await limit.check(tenant_id)) is not None:
            break
    assert refusal is not None
