"""Jira Cloud's three limits as the service keeps them (CONTRACT 12, guarantee 3 extended). Pure.

Atlassian limits an OAuth app three ways at once: an hourly points quota for the app across every customer site
(a write costs 1 point, a read 1 plus 1 per object returned), a per-second burst limit per site, and per-issue write
limits (20 per 2 s, 100 per 30 s). The service stays well inside them — a site's `rate_limit_per_second`, half of
the per-issue limits, 80 % of the quota shared fairly between the sites competing for it — and a 429 that comes all
the same pauses exactly what its `RateLimit-Reason` names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum

# (writes, seconds): half of Atlassian's 20 per 2 s and 100 per 30 s per issue
PER_ISSUE_WRITE_LIMITS: tuple[tuple[int, float], ...] = ((10, 2.0), (50, 30.0))
# the share of the app's hourly points quota the service spends at most (the rest is headroom for what it cannot
# count in advance: the objects a read returns)
POINTS_SHARE = 0.8
QUOTA_WINDOW = timedelta(hours=1)
# a site that took points or waited for them this recently competes for the pool
COMPETING_FOR = timedelta(seconds=60)
# lists whose length is the number of objects a read returned (worklogs of an issue, feeds, search, property keys)
_OBJECT_LISTS = ("worklogs", "values", "issues", "keys")


class LimitReason(StrEnum):
    """Atlassian's `RateLimit-Reason` of a 429."""

    GLOBAL_QUOTA = "jira-quota-global-based"
    TENANT_QUOTA = "jira-quota-tenant-based"
    BURST = "jira-burst-based"
    PER_ISSUE = "jira-per-issue-on-write"


class PauseScope(Enum):
    """What a 429 pauses."""

    POOL = "pool"  # every Cloud site of the app: the global points quota
    SITE = "site"  # one site: its own points quota, its burst limit, or a 429 that names no reason
    ISSUE = "issue"  # one issue's writes


def pause_scope(reason: str | None, *, issue: str | None) -> PauseScope:
    """What a Cloud 429 of `reason` pauses; a per-issue 429 of a request that names no issue pauses its site."""
    match reason:
        case LimitReason.GLOBAL_QUOTA:
            return PauseScope.POOL
        case LimitReason.PER_ISSUE if issue:
            return PauseScope.ISSUE
        case _:
            return PauseScope.SITE


def parse_reset(value: str | None) -> datetime | None:
    """`X-RateLimit-Reset` (ISO 8601, Atlassian writes `2026-11-30T17:00Z`), or None when absent or unreadable."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def pause_seconds(reason: str | None, *, retry_after: float, reset: str | None, now: datetime) -> float:
    """How long a Cloud 429 pauses its scope: a quota until `X-RateLimit-Reset` (an exhausted quota refuses
    everything until the hour ends), anything else `Retry-After` (at least 1 s)."""
    wait = max(retry_after, 1.0)
    if reason in (LimitReason.GLOBAL_QUOTA, LimitReason.TENANT_QUOTA):
        until = parse_reset(reset)
        if until is not None:
            # a reset more than a window away is not Atlassian's clock hour: never wait longer than one window
            wait = max(wait, min((until - now).total_seconds(), QUOTA_WINDOW.total_seconds()))
    return wait


def points_budget(points_per_hour: int) -> int:
    """The points the service spends at most per clock hour across every Cloud site."""
    return max(1, math.floor(points_per_hour * POINTS_SHARE))


def objects_returned(data: object) -> int:
    """How many objects a read's JSON answer holds, as Atlassian counts points: a list's items, the items of a
    page (`worklogs`, `values`, `issues`, `keys`), else one object."""
    if isinstance(data, list):
        return len(data)
    if isinstance(data, Mapping):
        for name in _OBJECT_LISTS:
            items = data.get(name)
            if isinstance(items, list):
                return len(items)
        return 1
    return 0


@dataclass(frozen=True)
class PointsUsage:
    """A pool's points in the current window (clock hour), in total and per site id, for stats and metrics."""

    used: int
    budget: int
    by_site: Mapping[str, int]
    resets_at: datetime
