"""The API process: app factory, lifespan (the shared objects from `app.bootstrap`), routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from app.api import audit as audit_api
from app.api import changes as changes_api
from app.api import conflicts as conflicts_api
from app.api import (
    connections,
    dashboard,
    edge,
    entries,
    health,
    jira_instances,
    oauth,
    tickets,
    webhooks_jira,
    webhooks_timetracker,
)
from app.api import me as me_api
from app.api import metrics as metrics_api
from app.api import notifications as notifications_api
from app.api import stats as stats_api
from app.api import tenant as tenant_api
from app.api import user_tokens as user_tokens_api
from app.api.body_limit import BodyLimit
from app.api.cors import AllowedOrigins, Cors
from app.api.deps import TENANT_CACHE_SECONDS, ApiKeyCache, TenantByIdCache
from app.api.tenant_rate import TenantRateLimit
from app.bootstrap import build
from app.config import Settings, get_settings
from app.db.repositories.tenants import all_allowed_origins
from app.logging_setup import configure_logging
from app.observability import MetricsPublisher, RequestIdMiddleware
from app.services.user_tokens import UserTokens

DESCRIPTION = """
Keeps TimeTracker time entries as worklogs in one or more JIRA Server/Data Center instances.

* Every `/api/v1` call needs `Authorization: Bearer <api key>` (`python -m app.cli create-api-key`), or a user token
  (`POST /api/v1/user-tokens`) that acts for one user only: the TimeTracker frontend's credential. Each operation's
  `x-scope` says which: `tenant` (the API key only) or `user` (a user token too, for its own user's data).
* Changes are accepted at once (202) and pushed to JIRA by workers; `sync.status` tells where each entry stands.
"""

TAGS = [
    {"name": "entries", "description": "TimeTracker entries and their sync state"},
    {"name": "jira-instances", "description": "JIRA Server/DC instances: how users connect, routing, rate limits"},
    {"name": "connections", "description": "Users' JIRA accounts: OAuth 1.0a, OAuth 2.0 or personal access tokens"},
    {"name": "tickets", "description": "Ticket look-ups in JIRA as the asking user (cached briefly)"},
    {"name": "webhooks", "description": "Signed events from TimeTracker and JIRA"},
    {"name": "conflicts", "description": "JIRA and TimeTracker disagree: list and resolve"},
    {"name": "notifications", "description": "What a person should know: conflicts, rejected connections, failures"},
    {"name": "changes", "description": "The changes feed: sync status changes and adoptions of JIRA's values"},
    {"name": "audit", "description": "One row per JIRA call, authentication event, adoption and resolution"},
    {"name": "tenant", "description": "The calling tenant's own settings (allowed_origins)"},
    {"name": "user-tokens", "description": "Short-lived tokens acting for one user, for the TimeTracker frontend"},
    {"name": "operations", "description": "Health, readiness, Prometheus metrics, per-instance stats, dashboard"},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings)
        runtime = build(settings, "api")
        # what the dependencies in app.api.deps hand to the routers
        state = app.state
        state.runtime, state.settings, state.engine, state.sessionmaker = (
            runtime, settings, runtime.engine, runtime.sessionmaker)
        state.secret_box, state.redis, state.wake, state.http, state.jira, state.probes, state.egress = (
            runtime.box, runtime.redis, runtime.wake, runtime.http, runtime.jira, runtime.probes, runtime.egress)
        state.credentials = runtime.credentials
        state.api_key_cache = ApiKeyCache(TENANT_CACHE_SECONDS)
        state.tenant_by_id_cache = TenantByIdCache(TENANT_CACHE_SECONDS)
        state.user_tokens = UserTokens(runtime.box, runtime.redis, cache_seconds=TENANT_CACHE_SECONDS)

        async def load_origins() -> set[str]:
            async with runtime.sessionmaker() as session:
                return await all_allowed_origins(session)

        state.allowed_origins = AllowedOrigins(load_origins, ttl=TENANT_CACHE_SECONDS)
        state.tenant_rate = TenantRateLimit(runtime.redis, settings.tenant_api_rate_per_second)
        # this process' JIRA calls (ticket look-ups, OAuth) join the workers' in the shared totals
        state.metrics_publisher = MetricsPublisher(runtime.redis, role="api", samplers=runtime.history_samplers())
        state.metrics_publisher.start()
        try:
            yield
        finally:
            await state.metrics_publisher.stop()
            await runtime.close()

    app = FastAPI(
        title="TimeTracker JIRA worklog sync",
        version="1.0.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        dependencies=[Depends(edge.reject_unknown_query)],
    )
    app.include_router(health.router)
    app.include_router(entries.router)
    app.include_router(webhooks_timetracker.router)
    app.include_router(jira_instances.router)
    app.include_router(oauth.router)
    app.include_router(connections.router)
    app.include_router(tickets.router)
    app.include_router(webhooks_jira.router)
    app.include_router(conflicts_api.router)
    app.include_router(notifications_api.router)
    app.include_router(changes_api.router)
    app.include_router(audit_api.router)
    app.include_router(stats_api.router)
    app.include_router(tenant_api.router)
    app.include_router(user_tokens_api.router)
    app.include_router(me_api.router)
    app.include_router(metrics_api.router)
    app.include_router(dashboard.router)
    # outermost last: every answer carries a request id, a browser on an allowed origin may read even a 413, and no
    # body over the limit reaches anything else
    app.add_middleware(BodyLimit, default=settings.api_max_body_bytes, batch=settings.api_max_batch_body_bytes)
    app.add_middleware(Cors, origins=lambda scope: scope["app"].state.allowed_origins)
    app.add_middleware(RequestIdMiddleware)
    edge.install(app)
    return app


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` builds the app lazily so importing this module needs no settings
    if name == "app":
        return create_app()
    raise AttributeError(name)
