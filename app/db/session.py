"""Engine and session factory; one per process, created in the app/worker lifespan."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def make_engine(database_url: str, *, pool_size: int = 10, max_overflow: int | None = None) -> AsyncEngine:
    """`pool_size` connections kept open, `max_overflow` (default: as many) opened when all are busy and closed
    when returned."""
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_recycle=1800,
    )
    event.listen(engine.sync_engine.pool, "checkout", _closed_connections_are_replaced)
    return engine


def _closed_connections_are_replaced(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
    """A pooled connection the server has closed (PostgreSQL restarted, backend terminated, idle timeout) is
    swapped for a fresh one before anyone uses it.

    SQLAlchemy's `pool_pre_ping` does this with a query, which on asyncpg costs three round trips (BEGIN, `;`,
    ROLLBACK) on every checkout. asyncpg already learns of a closed socket from the event loop, so asking it
    is free; a raised DisconnectionError makes the pool discard the connection and check out another.
    """
    raw = getattr(dbapi_connection, "_connection", None)  # the asyncpg connection inside SQLAlchemy's adapter
    if raw is not None and raw.is_closed():
        raise exc.DisconnectionError("the server closed this pooled connection")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
