"""The composition root: the one place that builds a process's shared objects, for the API, workers and CLI alike.

Every process holds one engine (with a pool sized for its role), one Redis client, one pooled, egress-checked
HTTP client towards JIRA behind the request gate all processes share (rate limiter and circuit breaker), the
wake-up of the pushers, and one secret box. They live as long as the process; nothing here is a module global:
the API keeps its `Runtime` on `app.state`, a worker in its `WorkerContext`, the CLI for the length of one command.

The JIRA side is built (and its modules imported) on first use: a CLI command never talks to JIRA, and a CLI
that starts in a fraction of a second is what an operator following a backlog wants.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Literal

from redis.asyncio import Redis

from app.config import Settings
from app.db.session import make_engine, make_sessionmaker
from app.security.secrets import SecretBox

if TYPE_CHECKING:
    import httpx

    from app.jira.circuit import CircuitBreaker
    from app.jira.client import JiraClient
    from app.jira.egress import EgressPolicy
    from app.jira.ratelimit import RedisRateLimiter
    from app.metrics_history import GaugeSampler, SeriesValues
    from app.services.credentials import Credentials
    from app.services.dispatch import PushWake, RedisWake
    from app.services.push import PushDeps
    from app.services.reconcile import ReconcileDeps
    from app.services.stats import Probes

Role = Literal["api", "worker", "cli"]


def pool_size(settings: Settings, role: Role) -> tuple[int, int]:
    """Database connections per process (kept open, opened beyond that when busy): a worker's transactions are
    short (its requests to JIRA hold none), a CLI command runs one thing. An API process keeps all of its 20 open:
    under load a connection opened for one request and closed after it cost a quarter of the CPU of accepting a
    change."""
    if role == "worker":
        return 10, 10
    return (2, 2) if role == "cli" else (20, 0)


def connect_redis(settings: Settings) -> Redis:
    """The process's Redis client: REDIS_URL's server, or with REDIS_SENTINELS the primary the sentinels name, asked
    again whenever a connection to it fails (after a failover the next commands reach the promoted replica)."""
    if not settings.redis_sentinels:
        return Redis.from_url(settings.redis_url)
    from redis.asyncio.connection import SSLConnection, parse_url
    from redis.asyncio.sentinel import Sentinel

    data = parse_url(settings.redis_url)
    sentinel_auth = {"password": settings.redis_sentinel_password} if settings.redis_sentinel_password else {}
    sentinel = Sentinel(settings.redis_sentinels, sentinel_kwargs={"socket_timeout": 5, **sentinel_auth})
    return sentinel.master_for(
        settings.redis_sentinel_master, db=data.get("db", 0), username=data.get("username"),
        password=data.get("password"), ssl=data.get("connection_class") is SSLConnection)


class Runtime:
    """A process's shared objects (no connection is opened before first use)."""

    def __init__(self, settings: Settings, role: Role) -> None:
        self.settings = settings
        kept, extra = pool_size(settings, role)
        self.engine = make_engine(settings.database_url, pool_size=kept, max_overflow=extra)
        self.sessionmaker = make_sessionmaker(self.engine)
        self.box = SecretBox(settings.encryption_keys)
        self.redis = connect_redis(settings)

    @cached_property
    def wake(self) -> RedisWake:
        """Wakes the pushers of the instances a committed change made due (app.services.dispatch)."""
        from app.services.dispatch import RedisWake

        return RedisWake(self.redis)

    @cached_property
    def limiter(self) -> RedisRateLimiter:
        """The request gate: every process' share of each instance's rate budget, and its circuit."""
        from app.jira.ratelimit import RedisRateLimiter

        return RedisRateLimiter(self.redis, self.circuit,
                                arrival_margin=self.settings.rate_limit_arrival_margin_seconds)

    @cached_property
    def egress(self) -> EgressPolicy:
        """Where JIRA requests may go (JIRA_ALLOWED_NETWORKS)."""
        from app.jira.egress import EgressPolicy, resolver_for

        return EgressPolicy(self.settings.jira_allowed_networks,
                            resolver=resolver_for(self.settings.jira_name_resolution))

    @cached_property
    def _jira_pair(self) -> tuple[httpx.AsyncClient, JiraClient]:
        from app.jira.client import jira_client_from_settings

        # one egress-checked HTTP pool and JIRA client per process, behind the rate limiter all processes share
        return jira_client_from_settings(self.settings, self.limiter, self.egress)

    @property
    def http(self) -> httpx.AsyncClient:
        return self._jira_pair[0]

    @property
    def jira(self) -> JiraClient:
        return self._jira_pair[1]

    @cached_property
    def circuit(self) -> CircuitBreaker:
        from app.jira.circuit import CircuitBreaker

        return CircuitBreaker.from_settings(self.redis, self.settings)

    @cached_property
    def credentials(self) -> Credentials:
        """How requests to JIRA authenticate as a user (keys parsed once per process; OAuth 2.0 renewals through
        this process's JIRA client, coordinated in Redis)."""
        from app.services.credentials import Credentials

        return Credentials(self.box, sessionmaker=self.sessionmaker, jira=self.jira, redis=self.redis,
                           settings=self.settings)

    @cached_property
    def probes(self) -> Probes:
        from app.services.credentials import cloud_pool
        from app.services.stats import Probes

        return Probes(self.circuit, self.limiter, cloud_pool(self.settings))

    def history_samplers(self) -> list[GaugeSampler]:
        """What this process samples into the metrics history when it claims a minute (app.metrics_history)."""
        from app.services.stats import history_gauges

        async def gauges() -> SeriesValues:
            return await history_gauges(self.sessionmaker, self.probes)

        return [gauges]

    def push_deps(self, wake: PushWake) -> PushDeps:
        from app.services.push import PushDeps

        return PushDeps(sessionmaker=self.sessionmaker, credentials=self.credentials, jira=self.jira,
                        settings=self.settings, wake=wake)

    def reconcile_deps(self, wake: PushWake) -> ReconcileDeps:
        from app.services.reconcile import ReconcileDeps

        return ReconcileDeps(sessionmaker=self.sessionmaker, credentials=self.credentials, jira=self.jira,
                             settings=self.settings, wake=wake)

    async def close(self) -> None:
        if "_jira_pair" in self.__dict__:
            await self.http.aclose()
        await self.redis.aclose()
        await self.engine.dispose()


def build(settings: Settings, role: Role) -> Runtime:
    """Everything a process of this role shares between its requests or jobs."""
    return Runtime(settings, role)
