"""Alembic on a real PostgreSQL: upgrade head, downgrade base, upgrade again; the models match the schema."""

from __future__ import annotations

import subprocess

from devstack.testenv import migrate


def _fresh_database(stack, name: str) -> str:
    bindir = stack.postgres.extra["bindir"]
    port = str(stack.postgres.port)
    subprocess.run([f"{bindir}/dropdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "--if-exists", name],
                   check=True)
    subprocess.run([f"{bindir}/createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", name], check=True)
    return stack.env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"


def _psql(stack, db: str, sql: str) -> str:
    return subprocess.run(
        [f"{stack.postgres.extra['bindir']}/psql", "-h", "127.0.0.1", "-p", str(stack.postgres.port), "-U",
         "postgres", "-d", db, "-tAc", sql],
        check=True, capture_output=True, text=True,
    ).stdout


def _tables(stack, url: str) -> set[str]:
    out = _psql(stack, url.rsplit("/", 1)[1], "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {t for t in out.split() if t}


EXPECTED = {"tenants", "api_keys", "jira_instances", "jira_connections", "oauth_requests", "entries",
            "webhook_deliveries", "audit_log", "conflicts", "notifications", "changes", "user_token_keys",
            "user_token_generations", "alembic_version"}


def test_upgrade_downgrade_upgrade(stack):
    url = _fresh_database(stack, "migration_roundtrip")
    migrate(url)
    assert _tables(stack, url) == EXPECTED
    migrate(url, "base", down=True)
    assert _tables(stack, url) <= {"alembic_version"}
    migrate(url)
    assert _tables(stack, url) == EXPECTED


def test_models_and_migrations_agree(stack):
    """Autogenerate against the migrated database finds nothing to do: no schema drift."""
    import asyncio

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.db.models import Base

    url = _fresh_database(stack, "migration_drift")
    migrate(url)

    async def diff() -> list:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            result = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}),
                                              Base.metadata))
        await engine.dispose()
        return result

    assert asyncio.run(diff()) == []


def test_indexes_for_the_contracts_queries_exist(stack):
    url = _fresh_database(stack, "migration_indexes")
    migrate(url)
    out = _psql(stack, "migration_indexes", "SELECT indexdef FROM pg_indexes WHERE tablename = 'entries'")
    assert "(tenant_id, sync_status)" in out
    assert "(tenant_id, \"user\")" in out
    assert "WHERE (due_at IS NOT NULL)" in out
    # one instance's backlog (migration 0002)
    assert "ix_entries_instance_due ON public.entries USING btree (instance_id, due_at) WHERE (due_at IS NOT NULL)" \
        in out
