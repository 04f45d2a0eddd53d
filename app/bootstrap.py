"""The composition root: the one place that builds a process's shared objects, for the API, workers and CLI alike.

Every process holds one engine (with a pool sized for its role), one Redis client, one pooled HTTP client
towards JIRA behind the rate limiter all processes share, one circuit breaker, one admission cap and one
secret box. They live as long as the process; nothing here is a module global: the API keeps its `Runtime`
on `app.state`, a worker in arq's ctx, the CLI for the length of one command.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import httpx
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db.session import make_engine, make_sessionmaker
from app.jira.admission import InstanceAdmission
from app.jira.circuit import CircuitBreaker
from app.jira.client import JiraClient, jira_client_from_settings
from app.jira.egress import EgressPolicy
from app.jira.ratelimit import RedisRateLimiter
from app.security.secrets import SecretBox
from app.services.push import PushDeps
from app.services.reconcile import ReconcileDeps
from app.services.stats import Probes

Role = Literal["api", "worker", "cli"]


def pool_size(settings: Settings, role: Role) -> int:
    """Database connections per process: a worker's jobs mostly wait on JIRA, a CLI command runs one thing."""
    if role == "worker":
        return max(5, settings.worker_concurrency // 2)
    return 2 if role == "cli" else 10


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    box: SecretBox
    redis: Redis
    http: httpx.AsyncClient
    limiter: RedisRateLimiter
    egress: EgressPolicy  # where JIRA requests may go (JIRA_ALLOWED_NETWORKS)
    jira: JiraClient
    circuit: CircuitBreaker
    admission: InstanceAdmission
    probes: Probes
    queue: ArqRedis | None = None  # the arq pool, once `connect_queue` made it

    async def connect_queue(self) -> ArqRedis:
        """The arq pool that pushes are enqueued on (made once)."""
        if self.queue is None:
            self.queue = await create_pool(RedisSettings.from_dsn(self.settings.redis_url), retry=0)
        return self.queue

    def push_deps(self) -> PushDeps:
        return PushDeps(sessionmaker=self.sessionmaker, box=self.box, jira=self.jira, circuit=self.circuit,
                        redis=self.redis, settings=self.settings, admission=self.admission)

    def reconcile_deps(self, queue: ArqRedis | None) -> ReconcileDeps:
        return ReconcileDeps(sessionmaker=self.sessionmaker, box=self.box, jira=self.jira, settings=self.settings,
                             circuit=self.circuit, queue=queue)

    async def close(self) -> None:
        if self.queue is not None:
            await self.queue.aclose()
        await self.http.aclose()
        await self.redis.aclose()
        await self.engine.dispose()


def build(settings: Settings, role: Role) -> Runtime:
    """Everything a process of this role shares between its requests or jobs (no connection is opened yet)."""
    engine = make_engine(settings.database_url, pool_size=pool_size(settings, role))
    redis = Redis.from_url(settings.redis_url)
    limiter = RedisRateLimiter(redis, arrival_margin=settings.rate_limit_arrival_margin_seconds)
    egress = EgressPolicy(settings.jira_allowed_networks)
    # one egress-checked HTTP pool and JIRA client per process, behind the rate limiter all processes share
    http, jira = jira_client_from_settings(settings, limiter, egress)
    circuit = CircuitBreaker.from_settings(redis, settings)
    return Runtime(
        settings=settings, engine=engine, sessionmaker=make_sessionmaker(engine),
        box=SecretBox(settings.encryption_keys), redis=redis, http=http, limiter=limiter, egress=egress, jira=jira,
        circuit=circuit, admission=InstanceAdmission(redis, lease_seconds=settings.push_job_timeout_seconds),
        probes=Probes(circuit, limiter),
    )
