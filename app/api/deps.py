"""FastAPI dependencies: session, settings, queue, current tenant."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Generic, TypeVar

from arq.connections import ArqRedis
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.tenant_rate import TenantRateLimit
from app.config import Settings
from app.db.models import Tenant
from app.db.repositories.tenants import tenant_for_key_hash
from app.jira.egress import EgressPolicy
from app.security.api_keys import hash_api_key, matches

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


def api_key_cache(request: Request) -> ApiKeyCache:
    cache: ApiKeyCache = request.app.state.api_key_cache  # one per process, made in the app's lifespan
    return cache


def tenant_by_id_cache(request: Request) -> TenantByIdCache:
    cache: TenantByIdCache = request.app.state.tenant_by_id_cache
    return cache


_bearer = HTTPBearer(auto_error=False, description="API key from `python -m app.cli create-api-key`")


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


# `async def` although they never await: FastAPI runs a plain `def` dependency in a worker thread, a thread
# hop on every request for a lookup of an attribute
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_queue(request: Request) -> ArqRedis | None:
    pool: ArqRedis | None = request.app.state.queue
    return pool


async def get_egress(request: Request) -> EgressPolicy:
    policy: EgressPolicy = request.app.state.egress
    return policy


SessionDep = Annotated[AsyncSession, Depends(get_session)]
EgressDep = Annotated[EgressPolicy, Depends(get_egress)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
QueueDep = Annotated[ArqRedis | None, Depends(get_queue)]


async def current_tenant(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED, "missing or unknown API key", headers={"WWW-Authenticate": "Bearer"}
    )
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise unauthorized
    key = credentials.credentials.strip()
    key_hash = hash_api_key(key)
    cache = api_key_cache(request)
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


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")
