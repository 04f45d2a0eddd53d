"""Every FastAPI dependency of the routers: session, unit of work, settings, queue, Redis, JIRA client, secret box,
caches, who the caller is (the tenant's API key or a user token, and so each route's scope), a tenant's JIRA
instance. All `async def`: FastAPI runs a plain `def` dependency in
a worker thread, a thread hop on every request for the look-up of an attribute."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.api.cors import STATE_KEY as CORS_STATE_KEY
from app.api.cors import AllowedOrigins
from app.api.tenant_rate import TenantRateLimit
from app.config import Settings
from app.db.models import JiraInstanceRow, Tenant
from app.db.repositories import jira as jira_repo
from app.db.repositories.tenants import get_tenant, tenant_for_key_hash
from app.jira.client import JiraClient
from app.jira.egress import EgressPolicy
from app.observability import MetricsPublisher
from app.security.api_keys import hash_api_key, matches
from app.security.secrets import SecretBox
from app.security.user_tokens import TokenExpired, TokenRejected, looks_like_user_token
from app.services.credentials import Credentials
from app.services.dispatch import PushWake
from app.services.stats import Probes
from app.services.unit_of_work import UnitOfWork
from app.services.user_tokens import UserTokens
from app.ttl_cache import TtlCache

# How long an API process trusts what it learnt about an API key or a tenant. The key → tenant look-up (and the
# webhook's tenant look-up) was one SQL round trip on every request; with this cache a revoked key keeps working
# for at most this long in each API process that used it recently. Misses are never cached, so a new key works
# at once. The one tenant setting that changes while the service runs, `allowed_origins` (PATCH /api/v1/tenant),
# likewise reaches other API processes within this time; the process that made the change clears its caches.
# User tokens are revoked at once everywhere (app.services.user_tokens); their signing secrets are cached this long.
TENANT_CACHE_SECONDS = 5.0

ApiKeyCache = TtlCache[str, tuple[Tenant, str]]  # key hash → (tenant, stored hash)
TenantByIdCache = TtlCache[uuid.UUID, Tenant]


def _from_app_state(name: str, *, optional: bool = False) -> Callable[[Request], Awaitable[Any]]:
    """A dependency handing over what the lifespan (app.main, from app.bootstrap) put on `app.state` as `name`:
    one per process, never a module global."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name, None) if optional else getattr(request.app.state, name)

    dependency.__name__ = f"app_state_{name}"
    return dependency


_bearer = HTTPBearer(auto_error=False, description=(
    "The tenant's API key (`python -m app.cli create-api-key`), or a user token (`POST /api/v1/user-tokens`) that "
    "acts for one user only"))


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(_from_app_state("settings"))]
# wakes the pushers of the instances a committed change made due
WakeDep = Annotated[PushWake, Depends(_from_app_state("wake"))]
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
UserTokensDep = Annotated[UserTokens, Depends(_from_app_state("user_tokens"))]
# the origins some tenant allows, as CORS answers preflights with them (app.api.cors)
AllowedOriginsDep = Annotated[AllowedOrigins, Depends(_from_app_state("allowed_origins"))]


async def get_unit_of_work(session: SessionDep, wake: WakeDep) -> UnitOfWork:
    """The request's unit of work, on the request's session: its `commit` writes the changes feed, commits, then
    wakes the pushers of what became due."""
    return UnitOfWork(session, wake)


UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work)]



@dataclass(frozen=True)
class Caller:
    """Who sent an `/api/v1` request (CONTRACT 2 and 14): the tenant's API key, acting for every user of the tenant,
    or a user token, acting for `user` alone. Every query a route makes for a user token is filtered to `user`."""

    tenant: Tenant
    user: str | None = None  # None: the tenant's API key
    expires_at: datetime | None = None  # a user token's expiry

    @property
    def only_user(self) -> str | None:
        """The user every query of this request is limited to (None: the whole tenant)."""
        return self.user

    def acts_for(self, user: str) -> bool:
        return self.user is None or self.user == user

    def require(self, user: str, *, field: str) -> None:
        """403 when a user token names another user (in a body, a path or a query)."""
        if not self.acts_for(user):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"{field}: a user token acts for its own user ({self.user!r}) only")

    def user_or(self, given: str | None, *, field: str) -> str | None:
        """`given` checked against the token's user, or the token's user when none was given."""
        if given is None:
            return self.user
        self.require(given, field=field)
        return given


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    request: Request,
    session: SessionDep,
    keys: ApiKeyCacheDep,
    tenants: TenantByIdCacheDep,
    user_tokens: UserTokensDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The one place that decides who the caller is: the tenant's API key or a user token (401 otherwise), counted
    against the tenant's rate. It also tells the CORS layer (app.api.cors) which origins may read the answer: the
    tenant's `allowed_origins` for a user token, none for the API key (which must never be in a browser)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("missing or unknown API key")
    credential = credentials.credentials.strip()
    if looks_like_user_token(credential):
        caller = await _user_token_caller(session, tenants, user_tokens, credential)
        setattr(request.state, CORS_STATE_KEY, tuple(caller.tenant.allowed_origins or ()))
    else:
        caller = Caller(await _api_key_tenant(session, keys, credential))
        setattr(request.state, CORS_STATE_KEY, ())
    await enforce_tenant_rate(request, caller.tenant.id)
    return caller


async def _api_key_tenant(session: AsyncSession, cache: ApiKeyCache, key: str) -> Tenant:
    key_hash = hash_api_key(key)
    found = cache.get(key_hash)
    if found is None:
        found = await tenant_for_key_hash(session, key_hash)
        if found is not None:
            cache.put(key_hash, found)
    # the index lookup is by hash; the final comparison is constant-time
    if found is None or not matches(key, found[1]):
        raise _unauthorized("missing or unknown API key")
    return found[0]


async def _user_token_caller(session: AsyncSession, tenants: TenantByIdCache, user_tokens: UserTokens,
                             token: str) -> Caller:
    try:
        claims = await user_tokens.verify(session, token)
    except TokenExpired:
        raise _unauthorized("user token expired: ask TimeTracker for a new one") from None
    except TokenRejected:
        raise _unauthorized("user token not valid (revoked, or not made by this service)") from None
    tenant = tenants.get(claims.tenant_id)
    if tenant is None:
        tenant = await get_tenant(session, claims.tenant_id)
        if tenant is None:  # deleted since
            raise _unauthorized("user token not valid (revoked, or not made by this service)")
        tenants.put(claims.tenant_id, tenant)
    return Caller(tenant, claims.user, claims.expires_at)


async def user_scoped(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
    """A route a user token may call (for its own user's data); the API key acts for every user."""
    return caller


async def tenant_admin(caller: Annotated[Caller, Depends(authenticate)]) -> Tenant:
    """A route of tenant administration: the tenant's API key only, a user token is answered 403."""
    if caller.user is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "tenant administration needs the tenant's API key; a user token may not call it")
    return caller.tenant


async def enforce_tenant_rate(request: Request, tenant_id: uuid.UUID) -> None:
    """Count an authenticated request (API key or signed webhook) against its tenant's rate; 429 beyond it."""
    limit: TenantRateLimit = request.app.state.tenant_rate
    wait = await limit.check(tenant_id)
    if wait is not None:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"this tenant sent more than {limit.rate:g} requests per second; retry after {wait} s",
                            headers={"Retry-After": str(wait)})


# Every /api/v1 route takes exactly one of these two (directly or through another dependency): that is its scope,
# shown in the OpenAPI document as `x-scope` and checked route by route by tests/integration/test_user_scope.py.
CallerDep = Annotated[Caller, Depends(user_scoped)]
TenantDep = Annotated[Tenant, Depends(tenant_admin)]
# ... and every router declares its scope up front (`APIRouter(dependencies=[TENANT_ADMIN])`): router dependencies
# run before anything of the route, so a user token gets its 403 before a path, query or body is even looked at
TENANT_ADMIN = Depends(tenant_admin)
USER_SCOPED = Depends(user_scoped)
Scope = Literal["tenant", "user", "public"]


def _calls(dependant: Dependant) -> set[Any]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def route_scope(dependant: Dependant) -> Scope:
    """A route's scope from its dependencies (`route.dependant`): `tenant` (the API key only), `user` (a user token
    too, for its own user) or `public` (no bearer credential)."""
    calls = _calls(dependant)
    if tenant_admin in calls:
        return "tenant"
    if user_scoped in calls:
        return "user"
    return "public"


InstanceId = Annotated[uuid.UUID, Path(description="the JIRA instance's id")]


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")


async def load_instance(session: SessionDep, caller: CallerDep, instance_id: InstanceId) -> JiraInstanceRow:
    """The caller's tenant's instance `instance_id`; another tenant's is answered 404 like a missing one."""
    row = await jira_repo.get_instance(session, caller.tenant.id, instance_id)
    if row is None:
        raise not_found(f"JIRA instance {instance_id}")
    return row


InstanceDep = Annotated[JiraInstanceRow, Depends(load_instance)]
