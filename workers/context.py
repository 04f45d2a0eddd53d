"""What a worker process holds for its jobs (passed in arq's ctx, never module globals)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from arq.connections import ArqRedis
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db.session import make_engine, make_sessionmaker
from app.jira.admission import InstanceAdmission
from app.jira.circuit import CircuitBreaker
from app.jira.client import jira_client_from_settings
from app.jira.ratelimit import RedisRateLimiter
from app.security.secrets import SecretBox
from app.services.push import PushDeps, PushEngine


@dataclass
class WorkerContext:
    settings: Settings
    engine: AsyncEngine
    deps: PushDeps
    push: PushEngine
    http: httpx.AsyncClient
    redis: Redis
    limiter: RedisRateLimiter

    async def close(self) -> None:
        await self.http.aclose()
        await self.redis.aclose()
        await self.engine.dispose()


def build_context(settings: Settings, queue: ArqRedis | None = None) -> WorkerContext:
    engine = make_engine(settings.database_url, pool_size=max(5, settings.worker_concurrency // 2))
    redis = Redis.from_url(settings.redis_url)
    limiter = RedisRateLimiter(redis, arrival_margin=settings.rate_limit_arrival_margin_seconds)
    http, jira = jira_client_from_settings(settings, limiter)
    circuit = CircuitBreaker.from_settings(redis, settings)
    deps = PushDeps(
        sessionmaker=make_sessionmaker(engine), box=SecretBox(settings.encryption_keys), jira=jira, circuit=circuit,
        redis=redis, settings=settings,
        admission=InstanceAdmission(redis, lease_seconds=settings.push_job_timeout_seconds),
    )
    return WorkerContext(settings, engine, deps, PushEngine(deps), http, redis, limiter)
