"""Jira Cloud's three limits: the hourly points quota (global and per site), the per-second burst limit per
endpoint and method, the per-issue write limits; Atlassian's headers; what the simulator observed."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

import pytest

from jirasim.cloud_limits import (
    BURST,
    GLOBAL_QUOTA,
    PER_ISSUE,
    REASONS,
    TENANT_QUOTA,
    CloudLimits,
    PointsPool,
    reset_header,
)
from jirasim.config import CloudLimitsConfig
from jirasim.control import SimControlError
from jirasim.testing import SimServer

from .conftest import APP_ID, CloudJira

LIMIT_HEADERS = ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit-Reason")


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1_796_000_000.0  # 2026-11-30T10:13:20Z

    def tick(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


def _limits(clocks: Clocks, **config: object) -> CloudLimits:
    return CloudLimits(CloudLimitsConfig.from_dict(config), clock=lambda: clocks.mono, wall=lambda: clocks.wall)


def _write(limits: CloudLimits, issue: str = "PROJ-1", pool: PointsPool | None = None) -> str | None:
    verdict = limits.admit(app_pool=pool, client_id="app", route=("POST", "/worklog"), issue_key=issue, write=True,
                           window=3600)
    return verdict.refusal.reason if verdict.refusal else None


# -- the rules, with a fake clock ------------------------------------------------------------------
def test_points_pool_counts_clock_hours() -> None:
    pool = PointsPool("global-app-quota", 100, 3600)
    noon = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()
    pool.charge(noon + 10, 85)
    assert pool.remaining(noon + 3599) == 15 and pool.near_limit(noon + 3599)
    assert pool.remaining(noon + 3600) == 100 and not pool.near_limit(noon + 3600)
    assert pool.reset_at(noon + 1800) == noon + 3600
    assert reset_header(noon + 3600) == "2026-11-30T13:00Z"  # Atlassian's yyyy-MM-ddTHH:mmZ
    assert reset_header(noon + 3600.2) == "2026-11-30T13:00:01Z"  # a few seconds ahead: with seconds
    assert pool.policy_headers(noon + 1800) == {
        "Beta-RateLimit-Policy": '"global-app-quota";q=100;w=3600',
        "Beta-RateLimit": '"global-app-quota";r=15;t=1800',
    }


def test_per_issue_limits_20_per_2s_and_100_per_30s() -> None:
    clocks = Clocks()
    limits = _limits(clocks)
    assert [_write(limits) for _ in range(21)] == [None] * 20 + [PER_ISSUE]
    assert _write(limits, "PROJ-2") is None  # another issue is not affected
    clocks.tick(2.0)
    for _ in range(4):  # 20 more every 2 s until 100 in 30 s
        assert [_write(limits) for _ in range(20)] == [None] * 20
        clocks.tick(2.0)
    assert _write(limits) == PER_ISSUE  # 100 within the last 30 s
    verdict = limits.admit(app_pool=None, client_id="app", route=("POST", "/worklog"), issue_key="PROJ-1",
                           write=True, window=3600)
    assert verdict.refusal is not None and verdict.refusal.limit == 100
    assert verdict.refusal.retry_after == 20  # the oldest of the 100 leaves the 30 s window 20 s from now
    clocks.tick(20.0)
    assert _write(limits) is None
    assert limits.max_writes(2.0) == 20 and limits.max_writes(30.0) == 100
    assert limits.max_writes(2.0, "PROJ-2") == 1


def test_refusals_in_order_quota_then_burst_then_issue() -> None:
    clocks = Clocks()
    limits = _limits(clocks, burst_rate=1, burst_capacity=2, tenant_points_per_hour=5)
    pool = PointsPool("global-app-quota", 3, 3600)
    assert _write(limits, pool=pool) is None
    assert _write(limits, pool=pool) is None
    assert _write(limits, pool=pool) == BURST
    limits.charge(app_pool=pool, client_id="app", points=3, window=3600)
    assert _write(limits, pool=pool) == GLOBAL_QUOTA
    assert _write(limits, pool=PointsPool("global-app-quota", 100, 3600)) == BURST
    limits.charge(app_pool=None, client_id="app", points=2, window=3600)
    assert _write(limits, pool=PointsPool("global-app-quota", 100, 3600)) == TENANT_QUOTA
    assert limits.observations()["rate_limited"] == {BURST: 2, GLOBAL_QUOTA: 1, TENANT_QUOTA: 1}


# -- over HTTP -----------------------------------------------------------------------------------------
def _next_hour() -> str:
    return datetime.fromtimestamp((math.floor(time.time() / 3600) + 1) * 3600, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")


def test_points_cost_and_are_logged(sim: SimServer, acme: CloudJira) -> None:
    for _ in range(3):
        assert acme.add_worklog("PROJ-1").status_code == 201
    assert acme("GET", "issue/PROJ-1/worklog").status_code == 200
    assert acme("GET", "issue/NOPE-1").status_code == 404
    assert acme("GET", "myself", token="not-a-token").status_code == 401
    points = [e["points"] for e in sim.control.log("acme")]
    assert points == [1, 1, 1, 4, 1, None]  # writes 1; a read 1 + objects; refused at the gateway: nothing
    usage = sim.control.cloud_usage("acme")
    assert usage["points_this_window"] == 8 and list(usage["points_by_window"].values()) == [8]
    app = sim.control.atlassian_usage()["apps"][APP_ID]
    assert (app["limit"], app["used"], app["remaining"]) == (65000, 8, 64992)
    assert app["reset"] == _next_hour()


def test_an_exhausted_global_quota_refuses_every_site_of_the_app(sim: SimServer, acme: CloudJira) -> None:
    sim.control.set_app_quota(APP_ID, 10)
    globex = CloudJira(sim, "globex", acme.access_token)
    for jira in [acme] * 8 + [globex]:
        write = jira.add_worklog("PROJ-1")
        assert write.status_code == 201 and "X-RateLimit-NearLimit" not in write.headers
    near = acme("GET", "issue/PROJ-1")  # 9 of 10 used before it, by both sites: less than 20 % left
    assert near.status_code == 200 and near.headers["X-RateLimit-NearLimit"] == "true"
    assert near.headers["Beta-RateLimit-Policy"] == '"global-app-quota";q=10;w=3600'
    assert near.headers["Beta-RateLimit"].startswith('"global-app-quota";r=1;t=')  # now 11 of 10: exhausted
    for jira in (acme, globex):
        refused = jira("GET", "issue/PROJ-1")
        assert refused.status_code == 429
        assert refused.headers["RateLimit-Reason"] == GLOBAL_QUOTA
        assert refused.headers["X-RateLimit-Limit"] == "10" and refused.headers["X-RateLimit-Remaining"] == "0"
        assert refused.headers["X-RateLimit-Reset"] == _next_hour()
        assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert sim.control.log("globex")[-1]["limit_reason"] == GLOBAL_QUOTA
    assert sim.control.log("globex")[-1]["points"] is None  # a 429 costs nothing
    assert sim.control.cloud_usage("acme")["rate_limited"] == {GLOBAL_QUOTA: 1}
    assert sim.control.atlassian_usage()["apps"][APP_ID]["used"] == 11


def test_a_site_pool_refuses_only_that_site(sim: SimServer, acme: CloudJira) -> None:
    sim.control.set_cloud_limits("acme", tenant_points_per_hour=2)
    assert acme.add_worklog("PROJ-1").status_code == 201
    assert acme.add_worklog("PROJ-1").status_code == 201
    refused = acme.add_worklog("PROJ-1")
    assert refused.status_code == 429 and refused.headers["RateLimit-Reason"] == TENANT_QUOTA
    assert CloudJira(sim, "globex", acme.access_token).add_worklog("PROJ-1").status_code == 201
    sim.control.set_cloud_limits("acme", no_tenant_pool=True)
    assert acme.add_worklog("PROJ-1").status_code == 201


def test_the_quota_resets_with_its_window(sim: SimServer, acme: CloudJira) -> None:
    sim.control.set_atlassian(quota_window_seconds=1)
    sim.control.set_app_quota(APP_ID, 1)
    while (r := acme("GET", "issue/PROJ-1")).status_code == 200:  # start right after a window began
        pass
    assert r.headers["Retry-After"] == "1"
    deadline = time.monotonic() + 5
    while acme("GET", "issue/PROJ-1").status_code == 429:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_burst_limit_is_per_endpoint_and_method(sim: SimServer, acme: CloudJira) -> None:
    sim.control.set_cloud_limits("acme", burst_rate=0.01, burst_capacity=2)
    ok = [acme("GET", "myself") for _ in range(2)]
    assert ok[1].headers["X-RateLimit-Limit"] == "2" and ok[1].headers["X-RateLimit-Remaining"] == "0"
    refused = acme("GET", "myself")
    assert refused.status_code == 429 and all(h in refused.headers for h in LIMIT_HEADERS)
    assert refused.headers["RateLimit-Reason"] == BURST and int(refused.headers["Retry-After"]) >= 1
    assert acme("GET", "issue/PROJ-1").status_code == 200  # another endpoint
    assert acme.add_worklog("PROJ-1").status_code == 201  # another method
    assert CloudJira(sim, "globex", acme.access_token)("GET", "myself").status_code == 200  # another site


def test_writes_to_one_issue_are_limited_and_observed(sim: SimServer, acme: CloudJira) -> None:
    sim.control.set_cloud_limits("acme", per_issue_writes=[(3, 2.0), (5, 30.0)])
    statuses = [acme.add_worklog("PROJ-1").status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    refused = sim.control.log("acme")[-1]
    assert refused["limit_reason"] == PER_ISSUE and refused["issue_key"] == "PROJ-1"
    wid = sim.control.worklogs("acme", "PROJ-1")[0]["id"]
    assert acme("GET", f"issue/PROJ-1/worklog/{wid}").status_code == 200  # reads are not limited per issue
    assert acme.add_worklog("PROJ-2").status_code == 201
    assert acme("PUT", f"issue/PROJ-1/worklog/{wid}/properties/k", json=1).status_code == 429  # a write too
    usage = sim.control.cloud_usage("acme")
    assert usage["writes_per_issue"] == {"PROJ-1": 3, "PROJ-2": 1}
    assert usage["max_writes_per_issue"]["PROJ-1"] == {"2s": 3, "30s": 3}
    assert sim.control.max_writes("acme", 2.0) == 3 and sim.control.max_writes("acme", 2.0, "PROJ-2") == 1
    assert usage["rate_limited"] == {PER_ISSUE: 2}


@pytest.mark.parametrize("enabled", [False])
def test_limits_can_be_switched_off(sim: SimServer, acme: CloudJira, enabled: bool) -> None:
    sim.control.set_cloud_limits("acme", burst_capacity=1, burst_rate=0.01, enabled=enabled)
    assert all(acme("GET", "myself").status_code == 200 for _ in range(3))


def test_a_scripted_429_of_each_reason(sim: SimServer, acme: CloudJira) -> None:
    """One 429 exactly where a test wants it, without tuning a limit: a rate_limit fault rule."""
    for reason in REASONS:
        sim.control.add_fault_rule("acme", "rate_limit", reason=reason, retry_after=2, path_contains="/issue/PROJ-1/")
        refused = acme.add_worklog("PROJ-1")
        assert refused.status_code == 429
        assert refused.headers["RateLimit-Reason"] == reason and refused.headers["Retry-After"] == "2"
        assert refused.headers["X-RateLimit-Remaining"] == "0" and refused.headers["X-RateLimit-Reset"]
        entry = sim.control.log("acme")[-1]
        assert (entry["fault"], entry["limit_reason"], entry["retry_after"]) == ("rate_limit", reason, 2)
    assert acme.add_worklog("PROJ-1").status_code == 201  # each rule answered once
    with pytest.raises(SimControlError, match="400"):
        sim.control.add_fault_rule("acme", "rate_limit", reason="jira-too-many")
