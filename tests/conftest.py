"""Session-wide real PostgreSQL and Redis (started here, no external setup), and app fixtures."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from devstack.testenv import TestStack, remove_stack_dir, start_test_stack

_real_getaddrinfo = socket.getaddrinfo
# names the test process asked to resolve that would have become a DNS query (traffic off loopback)
dns_attempts: list[str] = []


def _answerable_without_dns(host: object) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
        return True
    except ValueError:
        pass
    from app.jira.egress import read_hosts_file

    name = name.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost") or name in read_hosts_file()


def _loopback_only_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _answerable_without_dns(host):
        dns_attempts.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: the test suite sends no DNS queries")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(scope="session", autouse=True)
def no_dns_queries() -> Iterator[None]:
    """Every test's traffic stays on loopback: a name that only DNS could answer is refused, and reported."""
    socket.getaddrinfo = _loopback_only_getaddrinfo
    yield
    socket.getaddrinfo = _real_getaddrinfo
    assert not dns_attempts, f"the suite tried to resolve names through DNS: {sorted(set(dns_attempts))}"


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


@pytest.fixture(scope="session")
async def app(settings):  # type: ignore[no-untyped-def]
    from app.main import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def api(app):  # type: ignore[no-untyped-def]
    """An HTTP client on the app (no auth header)."""
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


def atlassian_config(settings: Any, stack: TestStack) -> dict[str, Any]:
    """The simulated Atlassian platform with the service's 3LO app (its id and secret are the test stack's)."""
    callback = f"{str(settings.public_base_url).rstrip('/')}/oauth/atlassian/callback"
    return {"atlassian": {"apps": [{
        "client_id": settings.atlassian_client_id, "client_secret": stack.atlassian_client_secret,
        "name": "TimeTracker", "callback_urls": [callback]}]}}


@pytest.fixture(scope="session")
def sim(stack: TestStack, settings: Any) -> Iterator[Any]:
    """One JIRA simulator for the session, on the port the stack reserved for it: Data Center instances and Jira
    Cloud sites (ATLASSIAN_AUTH_URL / _API_URL point at it). `tests/e2e/conftest.py`'s `jira_setup` adds a fresh
    instance per call. Packages that need a simulator of their own define a `sim` fixture of their own."""
    from jirasim.testing import SimServer

    with SimServer(atlassian_config(settings, stack), port=stack.sim_port) as server:
        assert server.atlassian_auth_url == settings.atlassian_auth_url
        yield server


@pytest.fixture
async def make_tenant(app):  # type: ignore[no-untyped-def]
    """Create a tenant: returns (tenant_id, api_key, webhook_secret)."""
    from app.services.tenants import create_tenant

    async def make(name: str = "Agency", timezone: str = "UTC"):  # type: ignore[no-untyped-def]
        async with app.state.sessionmaker() as session:
            t = await create_tenant(session, app.state.secret_box, name=name, timezone=timezone)
            await session.commit()
        return t

    return make


@pytest.fixture
async def tenant(make_tenant):  # type: ignore[no-untyped-def]
    return await make_tenant()


@pytest.fixture
def auth(tenant):  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {tenant.api_key}"}
