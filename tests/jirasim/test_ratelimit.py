"""Rate limiting: token bucket semantics, headers, 429s under concurrent load."""

from __future__ import annotations

import asyncio

import httpx

from jirasim.config import RateLimitConfig
from jirasim.observe import max_in_window
from jirasim.ratelimit import TokenBucket
from jirasim.testing import SimServer

from .conftest import Jira, http

HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Interval-Seconds", "X-RateLimit-FillRate")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_burst_then_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateLimitConfig(rate=10, burst=10), clock=clock)
    assert [bucket.take().allowed for _ in range(11)] == [True] * 10 + [False]
    denied = bucket.take()
    assert denied.retry_after == 1 and denied.remaining == 0
    clock.now += 0.1
    assert bucket.take().allowed
    assert not bucket.take().allowed
    clock.now += 5
    assert bucket.take().remaining == 9  # refilled to burst, never beyond


def test_token_bucket_slow_rate_retry_after() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateLimitConfig(rate=0.25, burst=1), clock=clock)
    assert bucket.take().allowed
    assert bucket.take().retry_after == 4


def test_max_in_window() -> None:
    assert max_in_window([], 1.0) == 0
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.5], 1.0) == 3
    assert max_in_window([0.0, 0.0, 0.0], 0.001) == 3


def test_headers_on_every_response(sim: SimServer, alice: Jira) -> None:
    sim.control.set_rate_limit("jira1", rate=0.01, burst=7, refill=True)  # no refill during the test
    responses = [
        alice("GET", "myself"),
        alice("GET", "issue/NOPE-1"),
        http.get(f"{sim.instance_url('jira1')}/rest/api/2/myself"),
        http.post(f"{sim.instance_url('jira1')}/plugins/servlet/oauth/request-token"),
    ]
    assert [r.status_code for r in responses] == [200, 404, 401, 401]
    for r in responses:
        assert r.headers["X-RateLimit-Limit"] == "7"
        assert r.headers["X-RateLimit-Interval-Seconds"] == "1"
        assert r.headers["X-RateLimit-FillRate"] == "0.01"
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in responses] == [6, 5, 4, 3]
    control = http.get(f"{sim.url}/_sim/instances/jira1/counters")
    assert "X-RateLimit-Limit" not in control.headers
    assert control.json()["requests"] == 4  # the control API is not counted


def test_429_with_and_without_retry_after(sim: SimServer, alice: Jira) -> None:
    sim.control.set_rate_limit("jira1", rate=0.01, burst=2, refill=True)
    statuses = [alice("GET", "myself") for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    limited = statuses[-1]
    assert int(limited.headers["Retry-After"]) >= 99
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    sim.control.set_rate_limit("jira1", retry_after=False)
    again = alice("GET", "myself")
    assert again.status_code == 429
    assert "Retry-After" not in again.headers
    assert all(h in again.headers for h in HEADERS)
    assert sim.control.counters("jira1")["rate_limited"] == 2


def test_rate_limit_is_per_instance(sim: SimServer) -> None:
    sim.control.set_rate_limit("jira1", rate=0.01, burst=1, refill=True)
    url1 = f"{sim.instance_url('jira1')}/rest/api/2/serverInfo"
    url2 = f"{sim.instance_url('jira2')}/rest/api/2/serverInfo"
    assert http.get(url1).status_code == 200
    assert http.get(url1).status_code == 429
    assert http.get(url2).status_code == 200


async def test_concurrent_clients_respect_bucket(sim: SimServer) -> None:
    rate, burst, clients = 10, 10, 50
    sim.control.set_rate_limit("jira1", rate=rate, burst=burst, refill=True)
    url = f"{sim.instance_url('jira1')}/rest/api/2/serverInfo"
    retry_afters: list[int] = []

    async def client(aclient: httpx.AsyncClient) -> int:
        attempts = 0
        while True:
            attempts += 1
            r = await aclient.get(url)
            if r.status_code == 200:
                return attempts
            assert r.status_code == 429
            retry_after = int(r.headers["Retry-After"])
            retry_afters.append(retry_after)
            await asyncio.sleep(retry_after)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False, verify=False) as aclient:
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempts = await asyncio.gather(*(client(aclient) for _ in range(clients)))
        elapsed = loop.time() - started

    assert len(attempts) == clients
    assert retry_afters and min(retry_afters) >= 1
    assert elapsed >= (clients - burst) / rate - 1.0
    counters = sim.control.counters("jira1")
    assert counters["accepted"] == clients
    assert counters["rate_limited"] == sum(attempts) - clients
    # the token bucket guarantee, measured by the simulator from arrival times:
    # at most `burst` at once, and never more than burst + rate * w in any window w
    for window in (0.001, 0.25, 1.0, 2.0):
        accepted = sim.control.max_requests_in_any_window("jira1", window=window, accepted_only=True)
        assert accepted <= burst + rate * window + 1e-9, (window, accepted)
    assert sim.control.max_requests_in_any_window("jira1", 1.0) >= burst
