"""Request log and counters that tests assert on."""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_LOG = 100_000
MAX_ARRIVALS = 500_000  # timestamps kept per instance for the window maxima


@dataclass
class RequestRecord:
    time: float  # wall clock (epoch seconds) at arrival
    instance: str
    method: str
    path: str
    query: str
    status: int  # 0 when the connection was dropped without a response
    user: str | None
    duration_ms: float
    write: bool
    issue_key: str | None = None
    oauth_problem: str | None = None
    fault: str | None = None
    retry_after: int | None = None  # the Retry-After a 429 carried: tests check the client honoured it
    auth: str | None = None  # oauth1 | pat | oauth2 | 3lo | client (token endpoint) | None (anonymous)
    client: str | None = None  # consumer key, OAuth 2.0 client id, PAT id
    points: int | None = None  # Cloud: points charged against the app's quota
    limit_reason: str | None = None  # Cloud: RateLimit-Reason of a 429

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InstanceCounters:
    requests: int = 0
    rate_limited: int = 0
    writes: int = 0
    # monotonic arrival times of every counted request / of those not rate limited
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_ARRIVALS))
    accepted: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_ARRIVALS))
    statuses: Counter[int] = field(default_factory=Counter)
    oauth_problems: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    auth_kinds: Counter[str] = field(default_factory=Counter)
    in_flight_writes: Counter[str] = field(default_factory=Counter)
    max_concurrent_writes: dict[str, int] = field(default_factory=dict)
    webhooks_sent: int = 0
    webhooks_failed: int = 0


def max_in_window(timestamps: Iterable[float], window: float) -> int:
    """Largest number of timestamps inside any half-open interval [t, t + window)."""
    ts = sorted(timestamps)
    best = 0
    start = 0
    for end, value in enumerate(ts):
        while value - ts[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


class Observer:
    """Thread-safe store of the request log and per-instance counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.log: deque[RequestRecord] = deque(maxlen=MAX_LOG)
        self._counters: dict[str, InstanceCounters] = {}

    def _c(self, instance: str) -> InstanceCounters:
        counters = self._counters.get(instance)
        if counters is None:
            counters = self._counters[instance] = InstanceCounters()
        return counters

    # -- recording ---------------------------------------------------------------
    def arrival(self, instance: str, mono: float, accepted: bool) -> None:
        with self._lock:
            c = self._c(instance)
            c.requests += 1
            c.arrivals.append(mono)
            if accepted:
                c.accepted.append(mono)
            else:
                c.rate_limited += 1

    def record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.log.append(rec)
            c = self._c(rec.instance)
            c.statuses[rec.status] += 1
            c.auth_kinds[rec.auth or "anonymous"] += 1
            if rec.oauth_problem:
                c.oauth_problems[rec.oauth_problem] += 1
            if rec.fault:
                c.faults[rec.fault] += 1

    def write_started(self, instance: str, issue_key: str | None) -> None:
        if not issue_key:
            return  # not a write to an issue (an OAuth 2.0 token request)
        with self._lock:
            c = self._c(instance)
            c.writes += 1
            if issue_key:
                c.in_flight_writes[issue_key] += 1
                current = c.in_flight_writes[issue_key]
                if current > c.max_concurrent_writes.get(issue_key, 0):
                    c.max_concurrent_writes[issue_key] = current

    def write_finished(self, instance: str, issue_key: str | None) -> None:
        if not issue_key:
            return
        with self._lock:
            c = self._c(instance)
            c.in_flight_writes[issue_key] -= 1
            if c.in_flight_writes[issue_key] <= 0:
                del c.in_flight_writes[issue_key]

    def webhook_result(self, instance: str, ok: bool) -> None:
        with self._lock:
            c = self._c(instance)
            if ok:
                c.webhooks_sent += 1
            else:
                c.webhooks_failed += 1

    # -- queries ---------------------------------------------------------------------
    def max_requests_in_any_window(self, instance: str, window: float = 1.0, accepted_only: bool = False) -> int:
        with self._lock:
            c = self._c(instance)
            stamps = list(c.accepted if accepted_only else c.arrivals)
        return max_in_window(stamps, window)

    def records(
        self,
        instance: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[RequestRecord]:
        with self._lock:
            items = [
                r
                for r in self.log
                if (instance is None or r.instance == instance) and (since is None or r.time >= since)
            ]
        if limit is not None:
            items = items[-limit:]
        return items

    def snapshot(self, instance: str) -> dict[str, Any]:
        with self._lock:
            c = self._c(instance)
            accepted = list(c.accepted)
            arrivals = list(c.arrivals)
            data: dict[str, Any] = {
                "requests": c.requests,
                "accepted": len(accepted),
                "rate_limited": c.rate_limited,
                "writes": c.writes,
                "statuses": {str(k): v for k, v in sorted(c.statuses.items())},
                "oauth_problems": dict(c.oauth_problems),
                "invalid_signatures": c.oauth_problems.get("signature_invalid", 0),
                "faults": dict(c.faults),
                "auth_kinds": dict(c.auth_kinds),
                "in_flight_writes": dict(c.in_flight_writes),
                "max_concurrent_writes": dict(c.max_concurrent_writes),
                "webhooks_sent": c.webhooks_sent,
                "webhooks_failed": c.webhooks_failed,
            }
        data["max_requests_per_second"] = max_in_window(arrivals, 1.0)
        data["max_accepted_per_second"] = max_in_window(accepted, 1.0)
        return data

    def reset(self, instance: str | None = None) -> None:
        with self._lock:
            if instance is None:
                self.log.clear()
                self._counters.clear()
            else:
                self.log = deque((r for r in self.log if r.instance != instance), maxlen=MAX_LOG)
                self._counters.pop(instance, None)
