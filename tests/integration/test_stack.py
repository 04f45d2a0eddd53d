from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


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
    killer = create_async_engine(app.state.settings.database_url)
    async with killer.connect() as conn:
        killed = (await conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ))).scalar_one()
    await killer.dispose()
    assert killed >= pooled
    await asyncio.sleep(0.2)  # the event loop hears the sockets close
    responses = await asyncio.gather(*(api.get("/api/v1/entries", headers=auth) for _ in range(6)))
    assert [r.status_code for r in responses] == [200] * 6
