"""`GET /metrics`: Prometheus text for the whole fleet (API and every worker), see app/observability.py."""

from __future__ import annotations

import hmac
import logging

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.deps import MetricsPublisherDep, ProbesDep, RedisDep, SessionDep, SettingsDep
from app.observability import GaugeFamily, GaugeValue, alive_publishers, read_totals, render
from app.services.stats import fleet_gauges

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

_EXAMPLE = """# HELP jira_requests_total Requests sent to JIRA, by instance, HTTP method, status code and operation.
# TYPE jira_requests_total counter
jira_requests_total{instance="1f0c…",method="POST",operation="create_worklog",status="201"} 42.0
# TYPE sync_queue_length gauge
sync_queue_length{instance="1f0c…",priority="user"} 3.0
"""


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    # bytes, so a non-ASCII header is a mismatch rather than compare_digest's TypeError
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode())


@router.get(
    "/metrics", summary="Prometheus metrics of the API and all workers",
    response_class=Response,
    responses={200: {"description": "Prometheus text exposition format 0.0.4",
                     "content": {"text/plain": {"schema": {"type": "string"}, "example": _EXAMPLE}}},
               401: {"description": "METRICS_TOKEN is set and the request does not carry it",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
               503: {"description": "Redis does not answer (the shared totals live there)",
                     "content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(
    request: Request, session: SessionDep, probes: ProbesDep, settings: SettingsDep, redis: RedisDep,
    publisher: MetricsPublisherDep,
) -> Response:
    """Counters and histograms summed over every process (published to Redis every 2 s); gauges computed now.
    With `METRICS_TOKEN` set, only `Authorization: Bearer <METRICS_TOKEN>` may read them."""
    if settings.metrics_token and not _bearer_matches(request, settings.metrics_token):
        return Response("missing or wrong metrics token\n", status_code=401, media_type="text/plain",
                        headers={"WWW-Authenticate": "Bearer"})
    try:
        if publisher is not None:
            await publisher.publish()  # this process' own latest increments
        totals, meta = await read_totals(redis)
        gauges = await fleet_gauges(session, probes)
        gauges.append(GaugeFamily(
            "metrics_publishers", "Processes (API and workers) that published metrics in the last 30 s.",
            [GaugeValue({}, float(await alive_publishers(redis)))],
        ))
    except Exception as exc:
        # readiness already reports a dead dependency; here a scrape gap says the same
        log.warning("metrics unavailable: %s", exc.__class__.__name__)
        return Response(f"# metrics unavailable: {exc.__class__.__name__}\n", status_code=503,
                        media_type="text/plain")
    return Response(render(totals, meta, gauges), media_type=CONTENT_TYPE_LATEST)
