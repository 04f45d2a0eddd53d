"""Observation of JIRA calls: one `JiraCall` per request that went out, for the audit log and metrics."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from app import metrics
from app.jira.errors import AuthRejected, JiraError, PermanentError, RateLimited, TransientError

log = logging.getLogger(__name__)

Outcome = Literal["ok", "auth_rejected", "permanent", "rate_limited", "transient"]


@dataclass(frozen=True)
class JiraCall:
    """One request to JIRA and how it went. `path` carries no query and nothing secret."""

    instance_id: uuid.UUID
    operation: str  # e.g. create_worklog, worklogs_updated_since, fetch_access_token
    method: str
    path: str
    status: int | None
    outcome: Outcome
    duration_ms: int
    detail: str
    gate_wait_ms: int = 0


OnCall = Callable[[JiraCall], Awaitable[None]]


def outcome_of(error: JiraError | None) -> Outcome:
    """The outcome label of a call that ended with `error` (None: success)."""
    if error is None:
        return "ok"
    if isinstance(error, AuthRejected):
        return "auth_rejected"
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, TransientError):
        return "transient"
    if isinstance(error, PermanentError):
        return "permanent"
    return "transient"


def record_metrics(call: JiraCall) -> None:
    """Count the call and its latency in the Prometheus registry."""
    instance = str(call.instance_id)
    status = str(call.status) if call.status is not None else "error"
    metrics.JIRA_REQUESTS.labels(instance, call.method, status, call.operation).inc()
    metrics.JIRA_REQUEST_DURATION.labels(instance, call.method).observe(call.duration_ms / 1000)


async def notify(observers: tuple[OnCall, ...], call: JiraCall) -> None:
    """Hand the call to every observer; an observer's failure never fails the JIRA call it describes."""
    for observer in observers:
        try:
            await observer(call)
        except Exception:
            log.exception("JIRA call observer failed for %s %s", call.method, call.path)
