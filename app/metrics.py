"""Prometheus metrics (CONTRACT section 9), all in one dedicated registry exported as `REGISTRY`.

The JIRA client records `jira_*` and `rate_limiter_wait_seconds`; the sync services, the queue and the
circuit breaker record the others.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_WAIT_BUCKETS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

JIRA_REQUESTS = Counter(
    "jira_requests",  # exposed as jira_requests_total
    "Requests sent to JIRA, by instance, HTTP method, status code ('error' when no answer) and operation.",
    ["instance", "method", "status", "operation"],
    registry=REGISTRY,
)
JIRA_REQUEST_DURATION = Histogram(
    "jira_request_duration_seconds",
    "Time from sending a request to JIRA until its answer was read (or the failure).",
    ["instance", "method"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RATE_LIMITER_WAIT = Histogram(
    "rate_limiter_wait_seconds",
    "Time a request waited at the per-instance request gate before being sent.",
    ["instance"],
    buckets=_WAIT_BUCKETS,
    registry=REGISTRY,
)
SYNC_OUTCOMES = Counter(
    "sync_outcomes",  # exposed as sync_outcomes_total
    "Results of pushing entries to JIRA (synced, failed, auth_required, conflict, retry, ...).",
    ["instance", "outcome"],
    registry=REGISTRY,
)
SYNC_QUEUE_LENGTH = Gauge(
    "sync_queue_length",
    "Entries waiting to be pushed, by instance and priority (user, batch).",
    ["instance", "priority"],
    registry=REGISTRY,
)
CIRCUIT_OPEN = Gauge(
    "circuit_open",
    "1 while an instance's circuit is open (or half-open), 0 when closed.",
    ["instance"],
    registry=REGISTRY,
)
CLOUD_RATE_LIMITED = Counter(
    "jira_cloud_rate_limited",  # exposed as jira_cloud_rate_limited_total
    "429 answers of Jira Cloud sites, by instance and RateLimit-Reason ('none' when the answer named none).",
    ["instance", "reason"],
    registry=REGISTRY,
)
CLOUD_LIMIT_WAITS = Counter(
    "jira_cloud_limit_waits",  # exposed as jira_cloud_limit_waits_total
    "Requests to Jira Cloud sites held back by the service's own Cloud budgets before anything was sent, by "
    "instance and budget (points, fair_share, issue_writes, pool_paused, site_paused, issue_paused, near_limit).",
    ["instance", "budget"],
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "jira_token_refreshes",  # exposed as jira_token_refreshes_total
    "OAuth 2.0 access-token renewals (Data Center oauth2, Jira Cloud 3lo), by instance, kind and outcome "
    "(renewed, refused: the server refused the refresh token, failed: no usable answer).",
    ["instance", "kind", "outcome"],
    registry=REGISTRY,
)
