"""Session-wide real PostgreSQL and Redis (started here, no external setup), and app fixtures."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from devstack.testenv import TestStack, remove_stack_dir, start_test_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[TestStack]:
    s = start_test_stack()
    saved = {k: os.environ.get(k) for k in s.env}
    os.environ.update(s.env)
    from app.config import get_settings

    get_settings.cache_clear()
    yield s
    s.stop()
    remove_stack_dir(s)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def settings(stack: TestStack):  # type: ignore[no-untyped-def]
    from app.config import get_settings

    return get_settings()


@pytest.fixture(scope="session")
async def redis(stack: TestStack) -> AsyncIterator[object]:
    from redis.asyncio import Redis

    r = Redis.from_url(stack.env["REDIS_URL"])
    yield r
    await r.aclose()
