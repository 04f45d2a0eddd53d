"""The history's pure parts: published increments condensed into per-instance series; latency quantiles from
cumulative buckets; which bucket size draws which window."""

from __future__ import annotations

import math

import pytest

from app.metrics_history import bucket_start, latency_buckets, quantile, series_increments, tier_for

INSTANCE = "8d0f7c36-0000-4000-8000-000000000001"


Sample = tuple[tuple[str, str, tuple[tuple[str, str], ...]], float]


def req(status: str, operation: str, n: float, instance: str = INSTANCE) -> Sample:
    labels = (("instance", instance), ("method", "POST"), ("operation", operation), ("status", status))
    return ("jira_requests", "jira_requests_total", labels), n


def test_jira_requests_become_requests_writes_429s_and_failures_by_kind() -> None:
    deltas = dict([
        req("201", "create_worklog", 3), req("200", "update_worklog", 2), req("204", "delete_worklog", 1),
        req("200", "get_issue", 4), req("429", "create_worklog", 2), req("error", "list_issue_worklogs", 1),
        req("401", "myself", 1), req("404", "create_worklog", 1), req("503", "update_worklog", 5),
        req("200", "get_issue", 7, instance="other"),
    ])
    assert series_increments(deltas) == {
        INSTANCE: {"requests": 20, "writes": 14, "status_429": 2, "fail_no_answer": 1, "fail_auth": 1,
                   "fail_refused": 1, "fail_server": 5},
        "other": {"requests": 7},
    }


def test_latency_and_outcomes_are_kept_and_everything_else_is_not() -> None:
    labels = (("instance", INSTANCE), ("method", "POST"))
    deltas = {
        ("jira_request_duration_seconds", "jira_request_duration_seconds_bucket", (*labels, ("le", "0.1"))): 2.0,
        ("jira_request_duration_seconds", "jira_request_duration_seconds_bucket", (*labels, ("le", "+Inf"))): 3.0,
        ("jira_request_duration_seconds", "jira_request_duration_seconds_count", labels): 3.0,
        ("jira_request_duration_seconds", "jira_request_duration_seconds_sum", labels): 0.9,
        ("sync_outcomes", "sync_outcomes_total", (("instance", INSTANCE), ("outcome", "synced"))): 4.0,
        ("rate_limiter_wait_seconds", "rate_limiter_wait_seconds_count", (("instance", INSTANCE),)): 9.0,
        ("sync_outcomes", "sync_outcomes_total", (("outcome", "synced"),)): 1.0,  # no instance: not charted
        ("sync_outcomes", "sync_outcomes_total", (("instance", INSTANCE), ("outcome", "failed"))): 0.0,  # nothing new
    }
    assert series_increments(deltas) == {INSTANCE: {"lat_le_0.1": 2.0, "lat_le_+Inf": 3.0, "lat_count": 3.0,
                                             "outcome_synced": 4.0}}


@pytest.mark.parametrize(("q", "buckets", "expected"), [
    (0.5, {}, None),
    (0.5, {0.1: 0, math.inf: 0}, None),
    (0.5, {0.1: 10, 0.5: 10, math.inf: 10}, 0.05),  # all in the first bucket: interpolated from 0
    (0.95, {0.1: 10, 0.5: 20, math.inf: 20}, 0.1 + 0.4 * (19 - 10) / 10),
    (0.5, {0.1: 0, 0.5: 4, 1.0: 4, math.inf: 4}, 0.1 + 0.4 * 2 / 4),
    (0.95, {0.1: 1, 60.0: 1, math.inf: 10}, 60.0),  # past the last finite bound: that bound
])
def test_quantiles_interpolate_like_prometheus(q: float, buckets: dict[float, float], expected: float | None) -> None:
    got = quantile(q, buckets)
    assert got == expected if expected is None else got == pytest.approx(expected)


def test_latency_buckets_parse_their_bounds() -> None:
    assert latency_buckets({"lat_le_0.25": 1.0, "lat_le_+Inf": 2.0, "requests": 5.0, "lat_count": 2.0}) == {
        0.25: 1.0, math.inf: 2.0}


def test_buckets_and_tiers() -> None:
    assert bucket_start(3599.9, 60) == 3540 and bucket_start(3600, 300) == 3600
    assert tier_for(3600) == 60 and tier_for(86400) == 300
