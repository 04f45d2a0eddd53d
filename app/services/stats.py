"""Operational figures: per-instance stats for `/api/v1/stats` and the dashboard, fleet gauges for `/metrics`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics_history
from app.clock import now_utc
from app.db.repositories import activity as activity_repo
from app.db.repositories import stats as repo
from app.domain.auth import Deployment
from app.domain.cloud_limits import PointsUsage
from app.domain.entry import SyncStatus
from app.domain.priority import Priority
from app.jira.circuit import CircuitBreaker
from app.jira.gate import CloudPool
from app.jira.ratelimit import RedisRateLimiter
from app.metrics_history import SeriesValues
from app.observability import GaugeFamily, GaugeValue, SampleKey

LATENCY_WINDOW = timedelta(hours=1)
ATTENTION_LIMIT = 20
# entries that reached a final answer from JIRA; the success rate is the synced share of these
_SETTLED = (SyncStatus.SYNCED, SyncStatus.FAILED, SyncStatus.CONFLICT, SyncStatus.AUTH_REQUIRED)


@dataclass(frozen=True)
class Probes:
    """The shared Redis state the figures read: circuit breaker and rate limiter (and the Cloud sites' pool)."""

    circuit: CircuitBreaker
    limiter: RedisRateLimiter
    pool: CloudPool | None = None


def fleet_counts(totals: dict[SampleKey, float], sample: str, instance: uuid.UUID, label: str) -> dict[str, int]:
    """One counter's fleet-wide totals for an instance, by `label` (e.g. Cloud 429s by reason), from the totals every
    process publishes to Redis (`app.observability.read_totals`)."""
    wanted = str(instance)
    out: dict[str, int] = {}
    for (_, name, labels), value in totals.items():
        by = dict(labels)
        if name == sample and by.get("instance") == wanted and label in by:
            out[by[label]] = out.get(by[label], 0) + int(value)
    return out


def _points(usage: PointsUsage, pool: CloudPool, quota: int | None) -> dict[str, Any]:
    return {"used": usage.used, "budget": usage.budget, "quota": quota, "window_seconds": int(pool.window_seconds),
            "resets_at": usage.resets_at}


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def _entry_summary(e: repo.EntrySummary) -> dict[str, Any]:
    return {
        "id": e.id, "user": e.user, "ticket": e.ticket, "status": e.status,
        "jira_instance": None if e.instance_id is None else str(e.instance_id),
        "reason": e.last_error, "attempts": e.attempts, "updated_at": e.sync_updated_at,
    }


async def tenant_stats(session: AsyncSession, probes: Probes, tenant_id: uuid.UUID, *,
                       now: datetime | None = None, points_quota: int | None = None,
                       totals: dict[SampleKey, float] | None = None) -> dict[str, Any]:
    """Per JIRA instance of the tenant: statuses, success rate, push latency, queue, circuit, rate-limit usage; per
    Jira Cloud site its points this hour, and the app's pool (`atlassian_points`) when the tenant has a site; with
    the fleet's metric `totals`, per instance its OAuth 2.0 token renewals and (Cloud) its 429s by reason."""
    now = now or now_utc()
    pool = probes.pool
    usage = await probes.limiter.cloud.pool_usage(pool) if pool is not None else None
    instances = await repo.tenant_instances(session, tenant_id)
    counts = await repo.status_counts(session, tenant_id)
    queues = await repo.queue_lengths(session, tenant_id, now=now)
    windows = await repo.push_windows(session, tenant_id, since=now - LATENCY_WINDOW)
    attention = await repo.newest_entries(
        session, tenant_id, [SyncStatus.FAILED.value, SyncStatus.CONFLICT.value], limit=ATTENTION_LIMIT
    )
    out: list[dict[str, Any]] = []
    for inst in instances:
        by_status = {s.value: 0 for s in SyncStatus}
        by_status.update(counts.get(inst.id, {}))
        settled = sum(by_status[s.value] for s in _SETTLED)
        queued, due = queues.get(inst.id, (0, 0))
        window = windows.get(inst.id, repo.PushWindow(0, 0, 0, None, None))
        state, failures, half_open_in = await probes.circuit.describe(inst.id)
        limiter = await probes.limiter.instance_stats(inst.id)
        out.append({
            "id": str(inst.id),
            "name": inst.name,
            "base_url": inst.base_url,
            "counts": by_status,
            "total": sum(by_status.values()),
            "success_rate": _rate(by_status[SyncStatus.SYNCED.value], settled),
            "failure_rate": _rate(by_status[SyncStatus.FAILED.value], settled),
            "push": {
                "window_seconds": int(LATENCY_WINDOW.total_seconds()),
                "calls": window.calls, "ok": window.ok, "failed": window.failed,
                "p50_ms": None if window.p50_ms is None else round(window.p50_ms, 1),
                "p95_ms": None if window.p95_ms is None else round(window.p95_ms, 1),
            },
            "queue_length": queued,
            "due_now": due,
            "circuit": {"state": state, "consecutive_failures": failures,
                        "half_open_in_seconds": round(half_open_in, 3)},
            "rate_limit": {
                "rate_limit_per_second": inst.rate_limit_per_second,
                "effective_rate_per_second": round(limiter.effective_rate_per_second, 3),
                "grants_last_second": limiter.grants_per_second[0],
                "usage": round(limiter.grants_per_second[0] / max(1, inst.rate_limit_per_second), 4),
                "paused_for_seconds": round(limiter.paused_for_seconds, 3),
                "waiting": {"user": limiter.waiting_user, "batch": limiter.waiting_batch},
            },
            "deployment": inst.deployment,
        })
        if inst.deployment == Deployment.CLOUD and usage is not None:
            out[-1]["points_this_hour"] = usage.by_site.get(str(inst.id), 0)
        if totals is not None:
            out[-1]["token_refreshes"] = fleet_counts(totals, "jira_token_refreshes_total", inst.id, "outcome")
            if inst.deployment == Deployment.CLOUD:
                out[-1]["rate_limited_by_reason"] = fleet_counts(totals, "jira_cloud_rate_limited_total", inst.id,
                                                                 "reason")
    unrouted = counts.get(None, {})
    return {
        "generated_at": now,
        "instances": out,
        "unrouted": {"counts": unrouted, "queue_length": queues.get(None, (0, 0))[0]},
        "attention": [_entry_summary(e) for e in attention],
        "atlassian_points": _points(usage, pool, points_quota)
        if pool is not None and usage is not None and any(i.deployment == Deployment.CLOUD for i in instances)
        else None,
    }


async def fleet_gauges(session: AsyncSession, probes: Probes) -> list[GaugeFamily]:
    """Gauges computed fresh at scrape time from PostgreSQL (queue) and Redis (circuits), for all tenants."""
    names = {int(p): p.name.lower() for p in Priority}
    instance_ids = await activity_repo.all_instance_ids(session)
    # every known instance at every priority, 0 included: a series must not vanish when its queue empties
    lengths: dict[tuple[uuid.UUID | None, int], float] = {(i, int(p)): 0.0 for i in instance_ids for p in Priority}
    lengths.update(await repo.fleet_queue_lengths(session))
    queue = [
        GaugeValue({"instance": "none" if inst is None else str(inst), "priority": names.get(prio, str(prio))}, n)
        for (inst, prio), n in sorted(lengths.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
    ]
    circuits = []
    for instance_id in instance_ids:
        state, _, _ = await probes.circuit.describe(instance_id)
        circuits.append(GaugeValue({"instance": str(instance_id)}, 0.0 if state == "closed" else 1.0))
    families = []
    if probes.pool is not None:
        usage = await probes.limiter.cloud.pool_usage(probes.pool)
        sites = [GaugeValue({"instance": site}, float(n)) for site, n in sorted(usage.by_site.items())]
        families = [
            GaugeFamily("jira_cloud_points_used", "Points of the Jira Cloud app's hourly quota the service's "
                        "requests took in the current clock hour, by Cloud site (instance).", sites),
            GaugeFamily("jira_cloud_points_pool_used", "Points taken in the current clock hour by every Cloud "
                        "site together, and the service's budget for the hour (80 % of ATLASSIAN_POINTS_PER_HOUR).",
                        [GaugeValue({"kind": "used"}, float(usage.used)),
                         GaugeValue({"kind": "budget"}, float(usage.budget))]),
        ]
    return [
        *families,
        GaugeFamily("sync_queue_length", "Entries waiting to be pushed (the outbox in PostgreSQL), by instance "
                    "and priority (user, batch); instance 'none' means not routed yet.", queue),
        GaugeFamily("circuit_open", "1 while an instance's circuit is open or half-open, 0 when closed.", circuits),
    ]


# -- history (app.metrics_history) ---------------------------------------------------------------------------------

async def history_gauges(sessionmaker: async_sessionmaker[AsyncSession], probes: Probes) -> SeriesValues:
    """What the history samples once a minute for every instance of every tenant: its queue length and whether its
    circuit is open (a circuit open between two samples is seen in the failure series, not here); a Cloud site's
    points this hour."""
    async with sessionmaker() as session:
        instance_ids = await activity_repo.all_instance_ids(session)
        lengths = await repo.fleet_queue_lengths(session)
    queued: dict[str, float] = {}
    for (instance, _priority), n in lengths.items():
        if instance is not None:
            queued[str(instance)] = queued.get(str(instance), 0.0) + n
    out: SeriesValues = {}
    for instance_id in instance_ids:
        state, _, _ = await probes.circuit.describe(instance_id)
        out[str(instance_id)] = {"queue": queued.get(str(instance_id), 0.0),
                                 "circuit_open": 0.0 if state == "closed" else 1.0}
    if probes.pool is not None:  # Jira Cloud sites: the points they took this hour
        for site, points in (await probes.limiter.cloud.pool_usage(probes.pool)).by_site.items():
            if site in out:
                out[site]["points_used"] = float(points)
    return out


def _per_second(value: float, step: int) -> float:
    return round(value / step, 3)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def history_point(bucket: metrics_history.Bucket, step: int) -> dict[str, Any]:
    """One chart point of an instance: rates per second over the bucket, counts in it, gauges (None: not sampled),
    latency quantiles (None: no request)."""
    c, g = bucket.counters, bucket.gauges
    latency = metrics_history.latency_buckets(c)
    return {
        "at": datetime.fromtimestamp(bucket.start, UTC),
        "requests_per_second": _per_second(c.get("requests", 0.0), step),
        "writes_per_second": _per_second(c.get("writes", 0.0), step),
        "rate_limited": int(c.get("status_429", 0.0)),
        "failures": {kind: int(c.get(f"fail_{kind}", 0.0)) for kind in metrics_history.FAILURE_KINDS},
        "outcomes": {name[len("outcome_"):]: int(v) for name, v in sorted(c.items()) if name.startswith("outcome_")},
        "p50_ms": _ms(metrics_history.quantile(0.5, latency)),
        "p95_ms": _ms(metrics_history.quantile(0.95, latency)),
        "queue_length": int(g.get("queue", 0.0)) if bucket.sampled else None,
        "circuit_open": g.get("circuit_open", 0.0) > 0 if bucket.sampled else None,
        # Jira Cloud's points (CONTRACT 12): a sampler adds `points_used` for Cloud sites; None elsewhere
        "points_used": int(g["points_used"]) if "points_used" in g else None,
    }


async def tenant_history(session: AsyncSession, redis: Redis, tenant_id: uuid.UUID, *, window_seconds: int,
                         now: datetime | None = None) -> dict[str, Any]:
    """Per instance of the tenant, one point per bucket over the last `window_seconds`, oldest first."""
    now = now or now_utc()
    instances = await repo.tenant_instances(session, tenant_id)
    step, _starts, buckets = await metrics_history.read(
        redis, [str(i.id) for i in instances], window_seconds=window_seconds, now=now.timestamp())
    return {
        "generated_at": now,
        "window_seconds": window_seconds,
        "step_seconds": step,
        "instances": [{
            "id": str(inst.id), "name": inst.name, "rate_limit_per_second": inst.rate_limit_per_second,
            "points": [history_point(b, step) for b in buckets[str(inst.id)]],
        } for inst in instances],
    }
