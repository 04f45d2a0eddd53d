"""Jira Cloud's rules the service decides on, as tables (CONTRACT 12): site addresses, the site a consent reaches,
the gateway base, the worklog property and adopting a worklog, the consent's end, and the limits (what a 429 pauses
and for how long, the points budget, fair shares, what a read costs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.auth import AuthKind, Deployment, deployment_problems, expiry_notice_due
from app.domain.cloud import AccessibleSite, gateway_base, normalise_site_url, reachable_site
from app.domain.cloud_limits import (
    PauseScope,
    objects_returned,
    parse_reset,
    pause_scope,
    pause_seconds,
    points_budget,
)
from app.domain.worklog import WorklogMarker, our_worklog

NOW = datetime(2026, 11, 30, 16, 40, tzinfo=UTC)


@pytest.mark.parametrize(("given", "normalised"), [
    ("https://acme.atlassian.net", "https://acme.atlassian.net"),
    ("  https://ACME.atlassian.net/ ", "https://acme.atlassian.net"),
    ("HTTPS://acme.atlassian.net", "https://acme.atlassian.net"),
])
def test_a_site_address_is_normalised(given: str, normalised: str) -> None:
    assert normalise_site_url(given) == normalised


@pytest.mark.parametrize(("given", "reason"), [
    ("http://acme.atlassian.net", "https://"),
    ("https://acme.atlassian.net/jira", "without a path"),
    ("https://u:p@acme.atlassian.net", "credentials"),
    ("https://acme.atlassian.net?x=1", "without a path"),
    ("https://", "host"),
    ("https://acme .atlassian.net", "spaces"),
    ("https://acme.atlassian.net:99999", "port"),
])
def test_a_bad_site_address_is_refused_with_a_reason(given: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_site_url(given)


def test_the_site_a_consent_reaches_is_found_by_its_address() -> None:
    sites = [AccessibleSite("c1", "https://other.atlassian.net"), AccessibleSite("c2", "https://ACME.atlassian.net/"),
             AccessibleSite("", "https://acme.atlassian.net")]
    found = reachable_site(sites, "https://acme.atlassian.net")
    assert found is not None and found.cloud_id == "c2"
    assert reachable_site(sites[:1], "https://acme.atlassian.net") is None
    assert gateway_base("https://api.atlassian.com/", "a/b") == "https://api.atlassian.com/ex/jira/a%2Fb"


@pytest.mark.parametrize(("deployment", "kind", "given", "site", "base", "app", "fields"), [
    (Deployment.CLOUD, AuthKind.ATLASSIAN, {"site_url"}, True, False, True, []),
    (Deployment.CLOUD, AuthKind.ATLASSIAN, {"site_url"}, True, False, False, ["deployment"]),
    (Deployment.CLOUD, AuthKind.ATLASSIAN, set(), False, False, True, ["site_url"]),
    (Deployment.CLOUD, AuthKind.OAUTH1, {"site_url", "consumer_key"}, True, False, True, ["consumer_key", "auth"]),
    (Deployment.DATACENTER, AuthKind.ATLASSIAN, {"base_url"}, False, True, True, ["auth"]),
    (Deployment.DATACENTER, AuthKind.OAUTH1, {"base_url", "site_url"}, True, True, True, ["site_url"]),
    (Deployment.DATACENTER, AuthKind.PAT, set(), False, False, True, ["base_url"]),
])
def test_what_each_deployment_needs_and_refuses(deployment: Deployment, kind: AuthKind, given: set[str], site: bool,
                                                base: bool, app: bool, fields: list[str]) -> None:
    problems = deployment_problems(deployment, kind, given=given, has_site_url=site, has_base_url=base,
                                   app_configured=app)
    assert [field for field, _ in problems] == fields


@pytest.mark.parametrize(("ends_in", "notified", "due"), [
    (timedelta(days=31), False, False),
    (timedelta(days=30), False, True),
    (timedelta(days=2), False, True),
    (timedelta(days=2), True, False),
    (-timedelta(days=1), False, True),
])
def test_the_consent_end_is_told_a_month_ahead_once(ends_in: timedelta, notified: bool, due: bool) -> None:
    assert expiry_notice_due(NOW + ends_in, NOW if notified else None, NOW) is due
    assert expiry_notice_due(None, None, NOW) is False


@dataclass(frozen=True)
class Found:
    id: str
    author: str | None
    anchor: str | None
    marker: WorklogMarker | None


def test_our_worklog_is_found_by_its_property_first_then_by_the_anchor() -> None:
    mine = WorklogMarker("t1", "4711")
    found = [
        Found("1", "mallory", "4711", mine),  # another author: never ours, whatever it carries
        Found("2", "alice", "4711", WorklogMarker("t2", "4711")),  # another tenant's entry 4711
        Found("3", "alice", "4711", None),  # the anchor alone
        Found("4", "Alice", "999", mine),  # the property survives an edited comment
    ]
    assert our_worklog(found, marker=mine, author="alice") == found[3]
    assert our_worklog(found[:3], marker=mine, author="alice") == found[2]
    assert our_worklog(found[:2], marker=mine, author="alice") is None
    assert WorklogMarker.of_properties([{"key": "timetracker", "value": {"tenant": "t1", "entry": "4711"}}]) == mine
    assert WorklogMarker.of_properties([{"key": "other", "value": {}}]) is None
    assert WorklogMarker.of_properties([{"key": "timetracker", "value": "x"}]) == WorklogMarker("", "")
    assert mine.as_property() == {"key": "timetracker", "value": {"tenant": "t1", "entry": "4711"}}


@pytest.mark.parametrize(("reason", "issue", "scope"), [
    ("jira-quota-global-based", "PROJ-1", PauseScope.POOL),
    ("jira-quota-tenant-based", None, PauseScope.SITE),
    ("jira-burst-based", "PROJ-1", PauseScope.SITE),
    ("jira-per-issue-on-write", "PROJ-1", PauseScope.ISSUE),
    ("jira-per-issue-on-write", None, PauseScope.SITE),
    (None, "PROJ-1", PauseScope.SITE),
    ("something-new", None, PauseScope.SITE),
])
def test_a_429_pauses_what_its_reason_names(reason: str | None, issue: str | None, scope: PauseScope) -> None:
    assert pause_scope(reason, issue=issue) is scope


@pytest.mark.parametrize(("reason", "retry_after", "reset", "seconds"), [
    ("jira-quota-global-based", 1, "2026-11-30T17:00Z", 1200),
    ("jira-quota-tenant-based", 5, "2026-11-30T16:50:00Z", 600),
    ("jira-quota-global-based", 30, None, 30),
    ("jira-quota-global-based", 1, "2031-01-01T00:00Z", 3600),  # never more than one window
    ("jira-quota-global-based", 1, "not a time", 1),
    ("jira-burst-based", 2, "2026-11-30T17:00Z", 2),
    ("jira-per-issue-on-write", 0, None, 1),
])
def test_how_long_a_429_pauses(reason: str, retry_after: float, reset: str | None, seconds: float) -> None:
    assert pause_seconds(reason, retry_after=retry_after, reset=reset, now=NOW) == seconds


def test_the_points_budget_and_what_a_read_returns() -> None:
    assert points_budget(65_000) == 52_000 and points_budget(1) == 1
    assert parse_reset("2026-11-30T17:00Z") == datetime(2026, 11, 30, 17, tzinfo=UTC)
    assert [objects_returned(x) for x in ([1, 2], {"worklogs": [1, 2, 3]}, {"values": []}, {"id": 1}, None)] == [
        2, 3, 0, 1, 0]
