from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from devstack.servers import free_port, start_redis
from tests.waiting import wait_until


async def test_postgres_and_redis_are_real(stack, redis):
    engine = create_async_engine(stack.env["DATABASE_URL"])
    async with engine.connect() as conn:
        version = (await conn.execute(text("SHOW server_version"))).scalar_one()
        tables = (await conn.execute(text("SELECT count(*) FROM pg_tables WHERE tablename = 'entries'"))).scalar_one()
    await engine.dispose()
    assert int(version.split(".")[0]) >= 15
    assert tables == 1
    assert await redis.ping()
    info = await redis.info("server")
    assert info["redis_version"].startswith("6.")


async def test_pooled_connections_the_server_closed_are_replaced_not_failed(app, api, auth):
    """PostgreSQL restarted or a backend was terminated: the next requests get fresh connections, not 500s."""
    import asyncio

    pool = app.state.engine.sync_engine.pool
    for _ in range(3):  # several pooled connections exist
        assert all(r.status_code == 200 for r in await asyncio.gather(
            *(api.get("/api/v1/entries", headers=auth) for _ in range(6))))
    pooled = pool.checkedin()
    assert pooled >= 2

    def resting() -> list[Any]:
        """The asyncpg connections resting in the pool now (what its checkout hook asks)."""
        records = list(pool._pool._queue._queue)  # SQLAlchemy's async queue around an asyncio.Queue's deque
        return [r.dbapi_connection._connection for r in records if r.dbapi_connection is not None]

    killer = create_async_engine(app.state.settings.database_url)
    async with killer.connect() as conn:
        killed = (await conn.execute(text(  # each backend has exited when this returns (PostgreSQL 14+)
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ))).scalar_one()
    await killer.dispose()
    assert killed >= pooled
    # what the app's checkout hook relies on: the event loop has heard each socket close
    await wait_until(lambda: all(c.is_closed() for c in resting()), timeout=30, interval=0.01)
    responses = await asyncio.gather(*(api.get("/api/v1/entries", headers=auth) for _ in range(6)))
    assert [r.status_code for r in responses] == [200] * 6



async def _readyz(settings, *, stop_before_asking=None) -> tuple[int, dict[str, str]]:
    """/readyz of an API process started with `settings`; `stop_before_asking` runs once it is up."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as c:
            if stop_before_asking is not None:
                assert (await c.get("/readyz")).status_code == 200
                stop_before_asking()
            r = await c.get("/readyz")
    return r.status_code, r.json()


async def test_readyz_is_200_only_when_postgres_and_redis_answer(settings, tmp_path):
    assert await _readyz(settings) == (200, {"status": "ready", "postgres": "ok", "redis": "ok"})
    # nothing listens where PostgreSQL should be
    nowhere = f"postgresql+asyncpg://tt:tt@127.0.0.1:{free_port()}/tt"
    status, body = await _readyz(settings.model_copy(update={"database_url": nowhere}))
    assert status == 503 and body["status"] == "not ready"
    assert body["postgres"].startswith("down: ") and body["redis"] == "ok"
    # Redis stops answering while the API runs
    redis = start_redis(tmp_path / "redis", persist=False)
    try:
        status, body = await _readyz(settings.model_copy(update={"redis_url": redis.url}),
                                     stop_before_asking=redis.kill)
    finally:
        redis.kill()
    assert status == 503 and body["status"] == "not ready"
    assert body["redis"].startswith("down: ") and body["postgres"] == "ok"
