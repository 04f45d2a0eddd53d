"""FastAPI dependencies: session, settings, queue, current tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from arq.connections import ArqRedis
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.models import Tenant
from app.db.repositories.tenants import tenant_for_key_hash
from app.security.api_keys import hash_api_key, matches

_bearer = HTTPBearer(auto_error=False, description="API key from `python -m app.cli create-api-key`")


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_queue(request: Request) -> ArqRedis | None:
    pool: ArqRedis | None = request.app.state.queue
    return pool


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
QueueDep = Annotated[ArqRedis | None, Depends(get_queue)]


async def current_tenant(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Tenant:
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED, "missing or unknown API key", headers={"WWW-Authenticate": "Bearer"}
    )
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise unauthorized
    key = credentials.credentials.strip()
    found = await tenant_for_key_hash(session, hash_api_key(key))
    # the index lookup is by hash; the final comparison is constant-time
    if found is None or not matches(key, found[1]):
        raise unauthorized
    return found[0]


TenantDep = Annotated[Tenant, Depends(current_tenant)]


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found")
