"""Per-instance sync statistics of the caller's tenant (CONTRACT section 9)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.api.deps import TENANT_ADMIN, ProbesDep, RedisDep, SessionDep, SettingsDep, TenantDep
from app.api.schemas.common import error_responses
from app.observability import read_totals
from app.services import stats as svc

router = APIRouter(prefix="/api/v1", tags=["operations"], dependencies=[TENANT_ADMIN])


class StatusCounts(BaseModel):
    pending: int = 0
    synced: int = 0
    failed: int = 0
    auth_required: int = 0
    conflict: int = 0
    skipped: int = 0
    deleted: int = 0


class PushFigures(BaseModel):
    window_seconds: int = Field(description="the recent window the figures cover")
    calls: int = Field(description="worklog writes (create, update, delete) sent to JIRA in the window")
    ok: int
    failed: int = Field(description="writes that JIRA refused or that failed (any non-success outcome)")
    p50_ms: float | None = Field(description="median write latency; null without writes in the window")
    p95_ms: float | None


class CircuitFigures(BaseModel):
    state: str = Field(description="closed | open | half_open", examples=["closed"])
    consecutive_failures: int
    half_open_in_seconds: float = Field(description="while open: time until a trial request is allowed")
    retry_every_seconds: float = Field(description="while open: how often one trial request is let through "
                                                   "(CIRCUIT_RESET_SECONDS)")


class Waiting(BaseModel):
    user: int
    batch: int


class RateLimitFigures(BaseModel):
    rate_limit_per_second: int
    effective_rate_per_second: float = Field(description="lower than configured after 429s or a low JIRA budget")
    grants_last_second: int = Field(description="requests let through to this instance in the last second")
    usage: float = Field(description="grants_last_second / rate_limit_per_second")
    paused_for_seconds: float = Field(description="remaining pause after a 429 from JIRA")
    waiting: Waiting


class InstanceStats(BaseModel):
    id: str
    name: str
    base_url: str
    counts: StatusCounts
    total: int
    success_rate: float | None = Field(
        description="synced / (synced + failed + conflict + auth_required); null when none is settled"
    )
    failure_rate: float | None = Field(description="failed / the same settled entries")
    push: PushFigures
    queue_length: int = Field(description="entries in the outbox (pending: queued, in flight or waiting to retry)")
    due_now: int = Field(description="of those, the ones whose push is due now")
    circuit: CircuitFigures
    rate_limit: RateLimitFigures
    deployment: str = Field("datacenter", description="datacenter | cloud")
    points_this_hour: int | None = Field(
        None, description="cloud: points of the app's hourly quota this site's requests took in the current hour")
    rate_limited_by_reason: dict[str, int] | None = Field(
        None, description="cloud: Atlassian's 429 answers so far, by RateLimit-Reason (all processes)")
    token_refreshes: dict[str, int] | None = Field(
        None, description="OAuth 2.0 (oauth2, 3lo) access-token renewals so far, by outcome: renewed, refused, failed "
                          "(all processes)")


class Unrouted(BaseModel):
    counts: dict[str, int] = Field(description="entries not routed to any instance, by status")
    queue_length: int


class AttentionEntry(BaseModel):
    id: str
    user: str
    ticket: str
    status: str = Field(examples=["failed"])
    jira_instance: str | None
    reason: str | None = Field(description="the entry's last_error")
    attempts: int
    updated_at: datetime


class AtlassianPoints(BaseModel):
    used: int = Field(description="points every Cloud site of the service's app took in the current clock hour")
    budget: int = Field(description="what the service spends at most per hour: 80 % of the quota")
    quota: int | None = Field(description="ATLASSIAN_POINTS_PER_HOUR")
    window_seconds: int
    resets_at: datetime


class StatsOut(BaseModel):
    generated_at: datetime
    instances: list[InstanceStats]
    unrouted: Unrouted
    attention: list[AttentionEntry] = Field(description="the newest failed and conflicting entries")
    atlassian_points: AtlassianPoints | None = Field(
        None, description="Jira Cloud: the app's points pool, shared by every Cloud site (null without Cloud sites)")


STATS_EXAMPLE: dict[str, Any] = {
    "generated_at": "2026-11-25T10:31:00Z",
    "instances": [{
        "id": "1f0c3c1e-8d2a-4c55-9a54-4f7e3f1f9c10", "name": "Main JIRA", "base_url": "https://jira.example.com/jira",
        "counts": {"pending": 3, "synced": 120, "failed": 2, "auth_required": 0, "conflict": 1, "skipped": 4,
                   "deleted": 7},
        "total": 137, "success_rate": 0.9756, "failure_rate": 0.0163,
        "push": {"window_seconds": 3600, "calls": 42, "ok": 40, "failed": 2, "p50_ms": 180.0, "p95_ms": 640.5},
        "queue_length": 3, "due_now": 1,
        "circuit": {"state": "closed", "consecutive_failures": 0, "half_open_in_seconds": 0.0,
                    "retry_every_seconds": 30.0},
        "rate_limit": {"rate_limit_per_second": 10, "effective_rate_per_second": 10.0, "grants_last_second": 4,
                       "usage": 0.4, "paused_for_seconds": 0.0, "waiting": {"user": 0, "batch": 2}},
    }],
    "unrouted": {"counts": {"skipped": 1}, "queue_length": 0},
    "attention": [{"id": "4711", "user": "jdoe", "ticket": "PROJ-123", "status": "failed",
                   "jira_instance": "1f0c3c1e-8d2a-4c55-9a54-4f7e3f1f9c10",
                   "reason": "JIRA answered 400: Issue does not exist", "attempts": 1,
                   "updated_at": "2026-11-25T10:30:12Z"}],
}


@router.get(
    "/stats", response_model=StatsOut, summary="Sync statistics per JIRA instance",
    responses={200: {"content": {"application/json": {"example": STATS_EXAMPLE}}}, **error_responses(401)},
)
async def stats(session: SessionDep, tenant: TenantDep, probes: ProbesDep, settings: SettingsDep,
                redis: RedisDep) -> dict[str, Any]:
    """Per JIRA instance of your tenant: entries by status, success rate, push latency p50/p95 over the last hour,
    queue length, circuit state and rate-limit usage (Jira Cloud sites: the points they took this hour, and the
    app's points pool); plus the newest failed and conflicting entries."""
    totals, _ = await read_totals(redis)
    figures = await svc.tenant_stats(session, probes, tenant.id, points_quota=settings.atlassian_points_per_hour,
                                     totals=totals)
    for instance in figures["instances"]:
        instance["circuit"]["retry_every_seconds"] = settings.circuit_reset_seconds
    return figures


class HistoryFailures(BaseModel):
    no_answer: int = Field(description="timeouts and connection errors: JIRA did not answer")
    auth: int = Field(description="401: JIRA rejected a user's sign-in (they must reconnect)")
    refused: int = Field(description="other 4xx (400, 403, 404): JIRA refused the request")
    server: int = Field(description="5xx: JIRA failed")


class HistoryPoint(BaseModel):
    at: datetime = Field(description="start of the bucket")
    requests_per_second: float = Field(description="requests sent to JIRA (all kinds), per second over the bucket")
    writes_per_second: float = Field(description="of those, worklog writes (create, update, delete)")
    rate_limited: int = Field(description="429 answers: JIRA asked to slow down")
    failures: HistoryFailures
    outcomes: dict[str, int] = Field(description="push results in the bucket (synced, failed, retry, …)")
    p50_ms: float | None = Field(description="median JIRA latency; null without requests")
    p95_ms: float | None = Field(description="95th percentile JIRA latency; null without requests")
    queue_length: int | None = Field(description="entries waiting to be pushed (the bucket's peak); null when no "
                                                 "process sampled it")
    circuit_open: bool | None = Field(description="the circuit was open (JIRA looked down) when sampled")
    points_used: int | None = Field(description="Jira Cloud points (CONTRACT 12); null for Data Center")


class InstanceHistory(BaseModel):
    id: str
    name: str
    rate_limit_per_second: int
    points: list[HistoryPoint] = Field(description="oldest first; the last bucket is still filling")


class HistoryOut(BaseModel):
    generated_at: datetime
    window_seconds: int
    step_seconds: int = Field(description="60 for the last hour, 300 for the last 24 hours")
    instances: list[InstanceHistory]


_WINDOWS = {"1h": 3600, "24h": 86400}


@router.get("/stats/history", response_model=HistoryOut, summary="Per-instance history for charts",
            responses=error_responses(401, 403))
async def history(
    session: SessionDep, tenant: TenantDep, redis: RedisDep,
    window: Annotated[Literal["1h", "24h"], Query(description="the last hour (per minute) or day (per 5 minutes)")]
    = "1h",
) -> dict[str, Any]:
    """Per JIRA instance of your tenant, what the fleet did over time: JIRA requests and writes per second against
    the rate limit, 429s, failures by kind, JIRA latency p50/p95, queue length and circuit state."""
    return await svc.tenant_history(session, redis, tenant.id, window_seconds=_WINDOWS[window])
