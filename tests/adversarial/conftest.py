"""A real API process under attack, its resident memory watched, and an unrelated tenant that must keep being
served. Loopback only: the hostile JIRA on 127.0.0.2 (the one network the API allows), refused listeners on
127.0.0.3 and 127.0.0.1."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
import pytest

from tests.adversarial.hostile_jira import CountingListener, HostileJira
from tests.live_server import live_api_process

MIB = 1024 * 1024
RSS_BUDGET = 32 * MIB  # CONTRACT 11 / issue 11: what one attack may add to the API's resident memory
ALLOWED = "127.0.0.2"
API_ENV = {"JIRA_ALLOWED_NETWORKS": f"{ALLOWED}/32", "JIRA_TIMEOUT_SECONDS": "2", "LOG_LEVEL": "WARNING"}


@dataclass
class LiveApi:
    base: str
    pid: int

    def rss(self) -> int:
        return int(psutil.Process(self.pid).memory_info().rss)


@pytest.fixture(scope="module")
def refused_listener() -> Iterator[CountingListener]:
    listener = CountingListener("127.0.0.3").start()
    yield listener
    listener.stop()


@pytest.fixture(scope="module")
def hostile_jira(refused_listener: CountingListener) -> Iterator[HostileJira]:
    jira = HostileJira(ALLOWED, redirect_to=f"http://127.0.0.3:{refused_listener.port}/").start()
    yield jira
    jira.stop()


@pytest.fixture(scope="module")
def live(stack: Any) -> Iterator[LiveApi]:
    with live_api_process({**stack.env, **API_ENV}, log_name="adversarial-api") as (base, proc):
        yield LiveApi(base, proc.pid)


@dataclass
class Tenant:
    tenant_id: uuid.UUID
    api_key: str
    webhook_secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture
async def two_tenants(make_tenant: Any) -> tuple[Tenant, Tenant]:
    """The attacked tenant (A) and an unrelated one (B)."""
    a, b = await make_tenant("Attacked"), await make_tenant("Unrelated")
    return Tenant(a.tenant_id, a.api_key, a.webhook_secret), Tenant(b.tenant_id, b.api_key, b.webhook_secret)


class RssWatch:
    """Samples a process' resident memory every 10 ms in a thread (the event loop may be busy)."""

    def __init__(self, live: LiveApi) -> None:
        self.live = live
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.live.rss())
            time.sleep(0.01)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class AttackReport:
    baseline: int
    peak: int
    answers: list[Any]
    bystander_answers: int = 0
    bystander_failures: list[str] = field(default_factory=list)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def check(self) -> None:
        assert self.growth < RSS_BUDGET, f"resident memory grew by {self.growth / MIB:.1f} MiB"
        assert not self.bystander_failures, self.bystander_failures
        assert self.bystander_answers > 0, "the unrelated tenant was never answered during the attack"


async def _bystander(live: LiveApi, tenant: Tenant, done: asyncio.Event, report: AttackReport) -> None:
    """/healthz and the unrelated tenant's own reads, over and over while the attack lasts."""
    async with httpx.AsyncClient(base_url=live.base, trust_env=False, timeout=15) as client:
        while not done.is_set():
            for path, headers in (("/healthz", {}), ("/api/v1/entries?limit=1", tenant.headers)):
                try:
                    r = await client.get(path, headers=headers)
                except httpx.HTTPError as exc:
                    report.bystander_failures.append(f"{path}: {type(exc).__name__}")
                    continue
                if r.status_code != 200:
                    report.bystander_failures.append(f"{path}: {r.status_code}")
                else:
                    report.bystander_answers += 1
            await asyncio.sleep(0.05)


async def under_attack(live: LiveApi, bystander: Tenant, attack: Callable[[], Awaitable[list[Any]]]) -> AttackReport:
    """Run `attack` against the live API while measuring its memory and serving the bystander tenant."""
    baseline = int(statistics.median(live.rss() for _ in range(5)))
    report = AttackReport(baseline, baseline, [])
    done = asyncio.Event()
    with RssWatch(live) as watch:
        watcher = asyncio.create_task(_bystander(live, bystander, done, report))
        try:
            report.answers = await attack()
            await asyncio.sleep(0.3)  # let the bystander see the aftermath too
        finally:
            done.set()
            await watcher
    report.peak = max([*watch.samples, baseline])
    print(f"attack: RSS +{report.growth / MIB:.1f} MiB (baseline {baseline / MIB:.0f} MiB), "
          f"{report.bystander_answers} bystander answers")  # shown with -s
    return report


@pytest.fixture
async def client(live: LiveApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base, trust_env=False, timeout=30) as c:
        yield c
