"""/metrics across processes, /api/v1/stats, the dashboard page, request ids and log context."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families

from app import metrics
from app.domain.priority import Priority
from app.jira.calls import JiraCall, record_metrics
from app.jira.circuit import CircuitBreaker
from app.jira.gate import InstanceRef
from app.jira.ratelimit import _GRANT, RedisRateLimiter
from app.logging_setup import ContextFilter, JsonFormatter, current_log_context, log_context
from app.observability import MetricsPublisher, read_totals, render
from tests.integration.ops_data import add_instance, add_push_audits, put_entries, set_state


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def _scrape(api) -> tuple[str, dict]:
    r = await api.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text, _samples(r.text)


async def test_two_processes_counters_and_histograms_are_summed(redis):
    # two registries stand for two processes; each publishes only its increments
    regs = [CollectorRegistry() for _ in range(2)]
    counters = [Counter("fleet_test_ops", "ops", ["instance"], registry=r) for r in regs]
    hists = [Histogram("fleet_test_seconds", "latency", ["instance"], buckets=(0.1, 1.0), registry=r) for r in regs]
    pubs = [MetricsPublisher(redis, registry=r, role="test") for r in regs]
    counters[0].labels("i1").inc(3)
    counters[1].labels("i1").inc(4)
    hists[0].labels("i1").observe(0.05)
    hists[1].labels("i1").observe(0.5)
    for p in pubs:
        await p.publish()
    counters[0].labels("i1").inc(1)  # a later increment is added, not re-sent whole
    await pubs[0].publish()
    await pubs[0].publish()  # nothing new: nothing added
    totals, meta = await read_totals(redis)
    samples = _samples(render(totals, meta, []).decode())
    assert samples[("fleet_test_ops_total", (("instance", "i1"),))] == 8
    assert samples[("fleet_test_seconds_bucket", (("instance", "i1"), ("le", "0.1")))] == 1
    assert samples[("fleet_test_seconds_bucket", (("instance", "i1"), ("le", "1.0")))] == 2
    assert samples[("fleet_test_seconds_count", (("instance", "i1"),))] == 2
    assert abs(samples[("fleet_test_seconds_sum", (("instance", "i1"),))] - 0.55) < 1e-9
    assert meta["fleet_test_ops"][0] == "counter"


async def test_publication_that_fails_is_sent_again_later(redis):
    from redis.asyncio import Redis

    reg = CollectorRegistry()
    c = Counter("fleet_retry_ops", "ops", registry=reg)
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    c.inc(5)
    try:
        await MetricsPublisher(dead, registry=reg).publish()
    except Exception:
        pass
    await dead.aclose()
    await MetricsPublisher(redis, registry=reg).publish()
    totals, _ = await read_totals(redis)
    assert totals[("fleet_retry_ops", "fleet_retry_ops_total", ())] == 5


async def test_metrics_endpoint_has_every_contract_metric(api, app, tenant, redis):
    instance_id = await add_instance(api, tenant)
    iid = str(instance_id)
    record_metrics(JiraCall(instance_id=instance_id, operation="create_worklog", method="POST",
                            path="/rest/api/2/issue/PROJ-1/worklog", status=201, outcome="ok", duration_ms=120,
                            detail=""))
    metrics.SYNC_OUTCOMES.labels(iid, "synced").inc()
    metrics.RATE_LIMITER_WAIT.labels(iid).observe(0.02)
    text, samples = await _scrape(api)
    for name in ("jira_requests_total", "jira_request_duration_seconds", "sync_outcomes_total", "sync_queue_length",
                 "rate_limiter_wait_seconds", "circuit_open"):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert samples[("jira_requests_total", (("instance", iid), ("method", "POST"), ("operation", "create_worklog"),
                                            ("status", "201")))] >= 1
    assert samples[("jira_request_duration_seconds_count", (("instance", iid), ("method", "POST")))] >= 1
    assert samples[("sync_outcomes_total", (("instance", iid), ("outcome", "synced")))] >= 1
    assert samples[("rate_limiter_wait_seconds_count", (("instance", iid),))] >= 1
    assert samples[("circuit_open", (("instance", iid),))] == 0


async def test_worker_process_activity_appears_on_the_api(api, stack):
    """A separate OS process (as a worker on another machine) counts; the API's /metrics shows it."""
    instance = str(uuid.uuid4())
    script = textwrap.dedent(f"""
        import asyncio
        from redis.asyncio import Redis
        from app import metrics
        from app.observability import MetricsPublisher

        async def main():
            redis = Redis.from_url({stack.env['REDIS_URL']!r})
            pub = MetricsPublisher(redis, role="worker")
            pub.start()
            metrics.SYNC_OUTCOMES.labels({instance!r}, "synced").inc(7)
            metrics.JIRA_REQUEST_DURATION.labels({instance!r}, "PUT").observe(0.3)
            await pub.stop()  # the final publication at shutdown
            await redis.aclose()

        asyncio.run(main())
    """)
    env = {**os.environ, **stack.env}
    for _ in range(2):  # two worker processes, one after the other: their counts add up
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script], env=env,
                                       capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    _, samples = await _scrape(api)
    assert samples[("sync_outcomes_total", (("instance", instance), ("outcome", "synced")))] == 14
    assert samples[("jira_request_duration_seconds_count", (("instance", instance), ("method", "PUT")))] == 2


async def test_queue_length_and_circuit_gauges_are_computed_at_scrape_time(api, app, tenant, auth, redis, settings):
    instance_id = await add_instance(api, tenant)
    await put_entries(api, auth, ["q1", "q2", "q3"])
    for e in ("q1", "q2", "q3"):
        await set_state(app, tenant.tenant_id, e, status="pending", instance_id=instance_id, due=True)
    breaker = CircuitBreaker.from_settings(redis, settings)
    for _ in range(settings.circuit_failure_threshold):
        await breaker.record_failure(instance_id)
    _, samples = await _scrape(api)
    iid = str(instance_id)
    assert samples[("sync_queue_length", (("instance", iid), ("priority", "user")))] == 3
    assert samples[("circuit_open", (("instance", iid),))] == 1
    r = await api.get("/api/v1/stats", headers=auth)
    inst = next(i for i in r.json()["instances"] if i["id"] == iid)
    assert inst["circuit"]["state"] == "open"
    assert inst["queue_length"] == 3
    await breaker.record_success(instance_id)


async def redis_now_us(redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1_000_000 + int(micros)


async def test_stats_per_instance(api, app, make_tenant, redis):
    t = await make_tenant("Stats Co")
    auth = {"Authorization": f"Bearer {t.api_key}"}
    main_id = await add_instance(api, t, name="Main", rate=5, project_keys=("PROJ",))
    ops_id = await add_instance(api, t, name="Ops", project_keys=("OPS",))
    ids = [f"s{i}" for i in range(8)]
    await put_entries(api, auth, ids)
    states = ["synced", "synced", "synced", "failed", "conflict", "pending", "pending", "skipped"]
    for i, (entry_id, st) in enumerate(zip(ids, states, strict=True)):
        await set_state(app, t.tenant_id, entry_id, status=st, instance_id=main_id, due=st == "pending",
                        last_error="JIRA answered 400: Issue does not exist" if st == "failed" else None,
                        age_seconds=100 - i)
    await add_push_audits(app, t.tenant_id, main_id, [100, 200, 300, 400])
    await add_push_audits(app, t.tenant_id, main_id, [9999], age_seconds=7200)  # outside the window
    await add_push_audits(app, t.tenant_id, main_id, [50], outcome="permanent")
    limiter = RedisRateLimiter(redis)
    slots = []  # µs on Redis' clock
    for _ in range(2):
        await limiter.acquire(InstanceRef(main_id, 5), Priority.USER)
        grant = _GRANT.get()
        assert grant is not None
        slots.append(grant.slot_us)

    asked = await redis_now_us(redis)
    r = await api.get("/api/v1/stats", headers=auth)
    answered = await redis_now_us(redis)
    assert r.status_code == 200, r.text
    body = r.json()
    by_name = {i["name"]: i for i in body["instances"]}
    assert set(by_name) == {"Main", "Ops"}
    main = by_name["Main"]
    assert main["counts"] == {"pending": 2, "synced": 3, "failed": 1, "auth_required": 0, "conflict": 1,
                              "skipped": 1, "deleted": 0}
    assert main["total"] == 8
    assert main["success_rate"] == round(3 / 5, 4)
    assert main["failure_rate"] == round(1 / 5, 4)
    assert main["queue_length"] == 2
    assert main["push"]["calls"] == 5 and main["push"]["ok"] == 4 and main["push"]["failed"] == 1
    # percentile_cont over 50, 100, 200, 300, 400
    assert main["push"]["p50_ms"] == 200.0
    assert main["push"]["p95_ms"] == 380.0
    assert main["circuit"]["state"] == "closed"
    assert main["rate_limit"]["rate_limit_per_second"] == 5
    # the grants in the second before the endpoint asked Redis, some moment between `asked` and `answered`
    assert (sum(s > answered - 1_000_000 for s in slots) <= main["rate_limit"]["grants_last_second"]
            <= sum(s > asked - 1_000_000 for s in slots))
    ops = by_name["Ops"]
    assert ops["total"] == 0 and ops["success_rate"] is None and ops["push"]["p50_ms"] is None
    assert str(ops_id) == ops["id"]
    attention = body["attention"]
    assert [a["id"] for a in attention] == ["s4", "s3"]  # newest first
    assert attention[1]["reason"] == "JIRA answered 400: Issue does not exist"


async def test_stats_are_tenant_scoped_and_need_a_key(api, app, make_tenant):
    a = await make_tenant("A")
    b = await make_tenant("B")
    await add_instance(api, a, name="A's JIRA")
    r = await api.get("/api/v1/stats", headers={"Authorization": f"Bearer {b.api_key}"})
    assert r.status_code == 200
    assert r.json()["instances"] == []
    assert (await api.get("/api/v1/stats")).status_code == 401
    assert (await api.get("/api/v1/stats", headers={"Authorization": "Bearer tts_nope"})).status_code == 401


async def test_dashboard_page_is_served_with_a_strict_policy(api):
    r = await api.get("/dashboard")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    policy = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    # nothing inline for the policy to refuse: every script and style is a file of its own
    assert "<script>" not in r.text and "<style" not in r.text and " style=" not in r.text
    assets = {"main.js": "text/javascript", "operator.js": "/api/v1/stats", "api.js": "sessionStorage",
              "person.js": "/api/v1/conflicts", "charts.js": "svg", "dashboard.css": "text/css"}
    for name, needle in assets.items():
        a = await api.get(f"/dashboard/assets/{name}")
        assert a.status_code == 200 and a.headers["x-content-type-options"] == "nosniff"
        assert needle in a.text or a.headers["content-type"].startswith(needle), name
        assert f"/dashboard/assets/{name}" in r.text or name not in ("main.js", "dashboard.css")
    for name in ("dashboard.html", "../config.py", "missing.js"):
        assert (await api.get(f"/dashboard/assets/{name}")).status_code == 404


async def test_request_id_is_echoed_or_made(api):
    r = await api.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await api.get("/healthz", headers={"X-Request-ID": "bad id with spaces <script>"})
    assert r.headers["x-request-id"] != "bad id with spaces <script>"
    assert len(r.headers["x-request-id"]) == 32
    r = await api.get("/healthz")
    assert len(r.headers["x-request-id"]) == 32


def test_log_lines_carry_request_and_entry_ids_and_no_secrets():
    record = logging.LogRecord("workers", logging.INFO, __file__, 1, "pushed with Bearer %s", ("tts_" + "x" * 30,),
                               None)
    with log_context(request_id="r-1", entry_id="4711"):
        ContextFilter().filter(record)
    from app.logging_setup import RedactingFilter

    RedactingFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "r-1" and line["entry_id"] == "4711"
    assert "tts_" not in line["message"] and "[REDACTED]" in line["message"]
    assert current_log_context() == {}


async def test_a_push_binds_its_entry_to_the_logs(api, pusher, jira, monkeypatch):
    from app.services.push import InstancePusher
    from tests.integration.jira_world import synced_entry

    seen: list[dict[str, str]] = []
    execute = InstancePusher._execute

    async def noting_the_context(self, planned, on_call):  # type: ignore[no-untyped-def]
        seen.append(current_log_context())
        return await execute(self, planned, on_call)

    monkeypatch.setattr(InstancePusher, "_execute", noting_the_context)
    await synced_entry(api, pusher, jira, entry_id="bound-1")
    # every line a push logs names its tenant, entry and instance; nothing leaks into the caller's context
    assert seen == [{"tenant_id": str(jira.tenant_id), "entry_id": "bound-1",
                     "instance_id": jira.setup.instance_id}]
    assert current_log_context() == {}
