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
