"""Every FastAPI dependency of the routers: session, unit of work, settings, queue, Redis, JIRA client, secret box,
caches, the current tenant, a tenant's JIRA instance. All `async def`: FastAPI runs a plain `def` dependency in
a worker thread, a thread hop on every request for the look-up of an attribute."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Generic, TypeVar

from arq.connections import ArqRedis
from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.api.tenant_rate import TenantRateLimit
from app.config import Settings
from app.db.models import JiraInstanceRow, Tenant
from app.db.repositories import jira as jira_repo
from app.db.repositories.tenants import tenant_for_key_hash
from app.jira.client import JiraClient
from app.jira.egress import EgressPolicy
from app.observability import MetricsPublisher
from app.security.api_keys import hash_api_key, matches
from app.security.secrets import SecretBox
from app.services.credentials import Credentials
from app.services.stats import Probes
from app.services.unit_of_work import UnitOfWork

K = TypeVar("K")
V = TypeVar("V")

# How long an API process trusts what it learnt about an API key or a tenant. The key → tenant look-up (and the
# webhook's tenant look-up) was one SQL round trip on every request; with this cache a revoked key keeps working
# for at most this long in each API process that used it recently. Misses are never cached, so a new key works
# at once. The one tenant setting that changes while the service runs, `allowed_origins` (PATCH /api/v1/tenant),
# likewise reaches other API processes within this time; the process that made the change clears its caches.
TENANT_CACHE_SECONDS = 5.0
_TENANT_CACHE_MAX = 10_000  # distinct keys one process remembers; beyond that the cache starts afresh


class TenantCache(Generic[K, V]):
    """What was read about a tenant, by key (API key hash or tenant id), for `ttl` seconds; values are
    detached, read-only rows."""

    def __init__(self, ttl: float = TENANT_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            del self._entries[key]
            return None
        return hit[1]

    def put(self, key: K, value: V) -> None:
        if len(self._entries) >= _TENANT_CACHE_MAX:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, value)

    def clear(self) -> None:
        self._entries.clear()


ApiKeyCache = TenantCache[str, tuple[Tenant, str]]  # key hash → (tenant, stored hash)
TenantByIdCache = TenantCache[uuid.UUID, Tenant]


def _from_app_state(name: str, *, optional: bool = False) -> Callable[[Request], Awaitable[Any]]:
    """A dependency handing over what the lifespan (app.main, from app.bootstrap) put on `app.state` as `name`:
    one per process, never a module global."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name, None) if optional else getattr(request.app.state, name)

    dependency.__name__ = f"app_state_{name}"
    return dependency


_bearer = HTTPBearer(auto_error=False, description="API key from `python -m app.cli create-api-key`")


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(_from_app_state("settings"))]
QueueDep = Annotated[ArqRedis | None, Depends(_from_app_state("queue"))]
EgressDep = Annotated[EgressPolicy, Depends(_from_app_state("egress"))]
BoxDep = Annotated[SecretBox, Depends(_from_app_state("secret_box"))]
RedisDep = Annotated[Redis, Depends(_from_app_state("redis"))]
EngineDep = Annotated[AsyncEngine, Depends(_from_app_state("engine"))]
# the process's JIRA client: the shared HTTP pool behind the Redis rate limiter all processes share
JiraDep = Annotated[JiraClient, Depends(_from_app_state("jira"))]
# how requests to JIRA authenticate as a user (app.services.credentials)
CredentialsDep = Annotated[Credentials, Depends(_from_app_state("credentials"))]
# the shared Redis state `/api/v1/stats` and `/metrics` read (circuit breaker, rate limiter)
ProbesDep = Annotated[Probes, Depends(_from_app_state("probes"))]
# this process' publisher of metric increments (None before the lifespan started one)
MetricsPublisherDep = Annotated[MetricsPublisher | None, Depends(_from_app_state("metrics_publisher", optional=True))]
ApiKeyCacheDep = Annotated[ApiKeyCache, Depends(_from_app_state("api_key_cache"))]
TenantByIdCacheDep = Annotated[TenantByIdCache, Depends(_from_app_state("tenant_by_id_cache"))]


async def get_unit_of_work(session: SessionDep, queue: QueueDep) -> UnitOfWork:
    """The request's unit of work, on the request's session: its `commit` writes the changes feed, commits, then
    enqueues the pushes that became due."""
    return UnitOfWork(session, queue)


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]



async def current_tenant(
    request: Request,
    session: SessionDep,
    cache: ApiKeyCacheDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED, "missing or unknown API key", headers={"WWW-Authenticate": "Bearer"}
    )
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise unauthorized
    key = credentials.credentials.strip()
    key_hash = hash_api_key(key)
    found = cache.get(key_hash)
    if found is None:
        found = await tenant_for_key_hash(session, key_hash)
        if found is not None:
            cache.put(key_hash, found)
    # the index lookup is by hash; the final comparison is constant-time
    if found is None or not matches(key, found[1]):
        raise unauthorized
    await enforce_tenant_rate(request, found[0].id)
    return found[0]


async def enforce_tenant_rate(request: Request, tenant_id: uuid.UUID) -> None:
    """Count an authenticated request (API key or signed webhook) against its tenant's rate; 429 beyond it."""
    limit: TenantRateLimit = request.app.state.tenant_rate
    wait = await limit.check(tenant_id)
    if wait is not None:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"this tenant sent more than {limit.rate:g} requests per second; retry after {wait} s",
                            headers={"Retry-After": str(wait)})


TenantDep = Annotated[Tenant, Depends(current_tenant)]
InstanceId = Annotated[uuid.UUID, Path(description="the JIRA instance's id")]


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


async def load_instance(session: SessionDep, tenant: TenantDep, instance_id: InstanceId) -> JiraInstanceRow:
    """The tenant's instance `instance_id`; another tenant's is answered 404 like a missing one."""
    row = await jira_repo.get_instance(session, tenant.id, instance_id)
    if row is None:
        raise not_found(f"JIRA instance {instance_id}")
    return row


InstanceDep = Annotated[JiraInstanceRow, Depends(load_instance)]
