"""The operator dashboard's history (app.metrics_history): what the processes publish every 2 s becomes
per-instance time series in Redis, a claimed minute's gauge samples join them, `/api/v1/stats/history` serves
them per bucket; bounded by TTLs."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from app.jira.calls import JiraCall, record_metrics
from app.metrics import SYNC_OUTCOMES
from app.observability import MetricsPublisher
from app.services.stats import tenant_history
from tests.integration.ops_data import add_instance, put_entries


def _call(instance_id: uuid.UUID, status: int | None, operation: str, ms: int) -> None:
    record_metrics(JiraCall(instance_id=instance_id, operation=operation, method="POST", path="/rest/api/2/x",
                            status=status, outcome="ok" if status and status < 300 else "transient",
                            duration_ms=ms, detail=""))


async def test_published_jira_calls_become_the_instances_history(app: Any, api: httpx.AsyncClient, tenant: Any,
                                                               auth: dict[str, str], redis: Any) -> None:
    instance_id = await add_instance(api, tenant, rate=7)
    for _ in range(30):
        _call(instance_id, 201, "create_worklog", 100)
    for _ in range(10):
        _call(instance_id, 200, "get_issue", 900)
    _call(instance_id, 429, "create_worklog", 50)
    _call(instance_id, None, "update_worklog", 30_000)
    _call(instance_id, 503, "update_worklog", 80)
    _call(instance_id, 401, "myself", 40)
    SYNC_OUTCOMES.labels(str(instance_id), "synced").inc(30)
    await app.state.metrics_publisher.publish()  # what its loop does every 2 s

    r = await api.get("/api/v1/stats/history", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["window_seconds"], body["step_seconds"]) == (3600, 60)
    [inst] = body["instances"]
    assert inst["id"] == str(instance_id) and inst["rate_limit_per_second"] == 7
    assert len(inst["points"]) == 60
    busy = [p for p in inst["points"] if p["requests_per_second"]]
    assert len(busy) == 1 and busy[0] in inst["points"][-2:]  # the current minute (or the one just ended)
    point = busy[0]
    # 44 requests, 33 of them worklog writes (the 429, the timeout and the 503 were writes too)
    assert point["requests_per_second"] == round(44 / 60, 3) and point["writes_per_second"] == round(33 / 60, 3)
    assert point["rate_limited"] == 1
    assert point["failures"] == {"no_answer": 1, "auth": 1, "refused": 0, "server": 1}
    assert point["outcomes"] == {"synced": 30}
    assert 50 <= point["p50_ms"] <= 100 and 500 <= point["p95_ms"] <= 1000
    assert point["points_used"] is None

    day = (await api.get("/api/v1/stats/history?window=24h", headers=auth)).json()
    [inst] = day["instances"]
    assert day["step_seconds"] == 300 and len(inst["points"]) == 288
    [busy5] = [p for p in inst["points"] if p["requests_per_second"]]
    assert busy5["rate_limited"] == 1 and busy5["writes_per_second"] == round(33 / 300, 3)

    ttls = [await redis.ttl(k) async for k in redis.scan_iter(match=f"ttsync:metrics:v1:hist:{{{instance_id}}}:*")]
    assert len(ttls) == 2 and all(0 < t <= 25 * 3600 for t in ttls)  # one bucket per resolution, both expiring

    assert (await api.get("/api/v1/stats/history?window=7d", headers=auth)).status_code == 422


async def test_a_claimed_minute_samples_queue_and_circuit(app: Any, api: httpx.AsyncClient, tenant: Any,
                                                          auth: dict[str, str]) -> None:
    instance_id = await add_instance(api, tenant)
    await put_entries(api, auth, ["q1", "q2", "q3"])  # no worker runs here: they wait in the outbox
    # a minute ahead, which no process has claimed yet (the session's publishers claim the current one)
    at = (time.time() // 60 + 2) * 60
    runtime = app.state.runtime
    first = MetricsPublisher(runtime.redis, role="test", samplers=runtime.history_samplers())
    second = MetricsPublisher(runtime.redis, role="test", samplers=runtime.history_samplers())
    assert await first.sample_gauges(at=at) is True
    assert await second.sample_gauges(at=at + 5) is False  # one sampler per minute in the whole fleet
    assert await first.sample_gauges(at=at + 10) is False  # and once per process

    async with app.state.sessionmaker() as session:
        history = await tenant_history(session, runtime.redis, tenant.tenant_id, window_seconds=3600,
                                       now=datetime.fromtimestamp(at + 30, UTC))
    [inst] = history["instances"]
    last = inst["points"][-1]
    assert last["queue_length"] == 3 and last["circuit_open"] is False
    assert inst["id"] == str(instance_id)
