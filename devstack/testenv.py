"""One PostgreSQL and one Redis for a whole test (or benchmark) session, migrated and ready."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from devstack.servers import Server, free_port, start_postgres, start_redis

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR_NETWORK = "127.0.0.1/32"
# the service's 3LO app as the simulator registers it (CONTRACT 12): a session's simulator serves Atlassian's platform
# on the port the stack reserved for it (`TestStack.sim_port`), where ATLASSIAN_AUTH_URL and _API_URL point
ATLASSIAN_TEST_CLIENT_ID = "tt-test-app"
# how every API process here is served: uvicorn's h11 parser refuses a request head over 16 KiB, httptools (its
# default with uvicorn[standard]) has no such limit (docs/security.md; the image sets UVICORN_HTTP=h11)
API_SERVER_ARGS = ("--http", "h11")


@dataclass
class TestStack:
    postgres: Server
    redis: Server
    env: dict[str, str]
    sim_port: int = 0  # where the session's JIRA simulator listens (Atlassian's platform for Jira Cloud included)

    @property
    def atlassian_client_secret(self) -> str:
        return self.env["ATLASSIAN_CLIENT_SECRET"]

    def stop(self) -> None:
        self.redis.stop()
        self.postgres.stop()


def migrate(database_url: str, revision: str = "head", *, down: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["skip_logging"] = True
    if down:
        command.downgrade(cfg, revision)
    else:
        command.upgrade(cfg, revision)


def new_encryption_keys() -> str:
    return "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()


def start_test_stack(name: str = "test") -> TestStack:
    """Fresh servers under `.data/<name>-<pid>/` (removed when stopped by the caller)."""
    base = ROOT / ".data" / f"{name}-{os.getpid()}"
    if base.exists():
        shutil.rmtree(base, ignore_errors=True)
    pg = start_postgres(base / "pg")
    redis = start_redis(base / "redis", persist=False)
    sim_port = free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    env = {
        "DATABASE_URL": pg.url,
        "REDIS_URL": redis.url,
        "ENCRYPTION_KEYS": new_encryption_keys(),
        # the simulator (and every JIRA a test or benchmark starts) listens on 127.0.0.1: allow that, nothing more
        "JIRA_ALLOWED_NETWORKS": SIMULATOR_NETWORK,
        # every test's traffic stays on loopback, DNS included: JIRA host names come from /etc/hosts only
        "JIRA_NAME_RESOLUTION": "hosts",
        # Jira Cloud: the service's 3LO app and Atlassian's platform, both the session simulator's
        "ATLASSIAN_CLIENT_ID": ATLASSIAN_TEST_CLIENT_ID,
        "ATLASSIAN_CLIENT_SECRET": secrets.token_urlsafe(24),
        "ATLASSIAN_AUTH_URL": f"{sim}/auth.atlassian.com",
        "ATLASSIAN_API_URL": f"{sim}/api.atlassian.com",
    }
    migrate(pg.url)
    return TestStack(pg, redis, env, sim_port)


def remove_stack_dir(stack: TestStack) -> None:
    shutil.rmtree(stack.postgres.data_dir.parent, ignore_errors=True)
