"""A hostile JIRA against the real API process: gzip bomb, endless trickle, oversized headers, an endless body,
a redirect to a refused address, an HTML error page with internal details, and names and addresses the egress
rules refuse. The API's memory stays within budget, an unrelated tenant keeps being served, the caller learns
nothing but a status or JIRA's own error fields, and a refused address never sees a connection."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.db.models import ConnectionRow, JiraInstanceRow
from app.security.api_keys import new_webhook_secret
from app.security.rsa_keys import generate_key_pair
from app.security.secrets import binding
from tests.adversarial.conftest import LiveApi, Tenant, under_attack
from tests.adversarial.hostile_jira import LEAK_MARKER, CountingListener, HostileJira

# what the caller reads for each attack: a status, or JIRA's own words, never what the server sent otherwise
ATTACKS = {
    "BOMB": "JIRA answer too large",
    "TRICKLE": "JIRA did not answer completely within 2 s",
    "HEADERS": "connection to JIRA failed: RemoteProtocolError",
    "ENDLESS": "JIRA answer too large",
    "REDIRECT": "JIRA answered 302 Found (a redirect); check the instance's base_url",
    "HTML": "JIRA answered 500 Internal Server Error",
}
CONCURRENT = 4


async def _connect(app: Any, tenant: Tenant, instance_id: uuid.UUID, user: str = "jdoe") -> None:
    box = app.state.secret_box
    cid = uuid.uuid4()
    async with app.state.sessionmaker() as session:
        session.add(ConnectionRow(
            id=cid, tenant_id=tenant.tenant_id, jira_instance_id=instance_id, user=user, jira_username=user,
            status="connected", connected_at=datetime.now(UTC),
            access_token_enc=box.seal("token", binding("jira_connections", "access_token", cid)),
            token_secret_enc=box.seal("secret", binding("jira_connections", "token_secret", cid)),
        ))
        await session.commit()


async def _instance_row(app: Any, tenant: Tenant, base_url: str) -> uuid.UUID:
    """An instance stored as if created before the egress rules (or under other ones): the API's own checks
    at create time are bypassed, so the check at connection time is what is tested."""
    box = app.state.secret_box
    keys = await asyncio.to_thread(generate_key_pair)
    instance_id = uuid.uuid4()
    async with app.state.sessionmaker() as session:
        session.add(JiraInstanceRow(
            id=instance_id, tenant_id=tenant.tenant_id, name=f"legacy {instance_id}", base_url=base_url,
            consumer_key="timetracker", rate_limit_per_second=100, project_keys=["PROJ"],
            private_key_enc=box.seal(keys.private_pem, binding("jira_instances", "private_key", instance_id)),
            public_key_pem=keys.public_pem,
            webhook_secret_enc=box.seal(new_webhook_secret(), binding("jira_instances", "webhook_secret", instance_id)),
        ))
        await session.commit()
    await _connect(app, tenant, instance_id)
    return instance_id


@pytest.fixture
async def hostile_instance(app: Any, client: httpx.AsyncClient, two_tenants: tuple[Tenant, Tenant],
                           hostile_jira: HostileJira) -> uuid.UUID:
    attacked, _ = two_tenants
    r = await client.post("/api/v1/jira-instances", headers=attacked.headers, json={
        "name": "Hostile", "base_url": hostile_jira.url, "rate_limit_per_second": 1000, "project_keys": list(ATTACKS)})
    assert r.status_code == 201, r.text
    instance_id = uuid.UUID(r.json()["id"])
    await _connect(app, attacked, instance_id)
    # Warm the path the attacks take (lazy JIRA side, key parsing, connection pool, allocator arenas) with
    # harmless look-ups, so the memory measured is what an attack adds, not what a process' first JIRA calls cost.
    fine = await asyncio.gather(*(client.get(f"/api/v1/jira-instances/{instance_id}/tickets/FINE-{n + 1}",
                                             params={"user": "jdoe"}, headers=attacked.headers)
                                  for n in range(CONCURRENT)))
    assert [r.status_code for r in fine] == [200] * CONCURRENT, [r.text for r in fine]
    return instance_id


@pytest.mark.parametrize("attack", ATTACKS)
async def test_hostile_jira_answers_cost_bounded_memory_and_leak_nothing(
    live: LiveApi, client: httpx.AsyncClient, two_tenants: tuple[Tenant, Tenant], hostile_instance: uuid.UUID,
    hostile_jira: HostileJira, refused_listener: CountingListener, attack: str,
) -> None:
    attacked, bystander = two_tenants
    path = f"/api/v1/jira-instances/{hostile_instance}/tickets"

    async def lookups() -> list[Any]:
        keys = [f"{attack}-{uuid.uuid4().int % 10**6}" for _ in range(CONCURRENT)]
        return await asyncio.gather(*(client.get(f"{path}/{k}", params={"user": "jdoe"}, headers=attacked.headers)
                                      for k in keys))

    report = await under_attack(live, bystander, lookups)
    report.check()
    for r in report.answers:
        assert r.status_code == 502, r.text  # JIRA failed; the service did not
        detail = r.json()["detail"]
        assert ATTACKS[attack] in detail, detail
        assert LEAK_MARKER not in detail and "127.0.0.3" not in detail and "<html" not in detail.lower(), detail
    assert any(f"/{attack}-" in p for p in hostile_jira.requests)
    assert refused_listener.connections == 0


async def test_a_redirect_is_never_followed_nor_repeated(
    client: httpx.AsyncClient, two_tenants: tuple[Tenant, Tenant], hostile_instance: uuid.UUID,
    refused_listener: CountingListener,
) -> None:
    attacked, _ = two_tenants
    r = await client.get(f"/api/v1/jira-instances/{hostile_instance}/tickets/REDIRECT-1", params={"user": "jdoe"},
                         headers=attacked.headers)
    assert r.status_code == 502
    assert r.json()["detail"] == ("JIRA Hostile refused the look-up: JIRA answered 302 Found (a redirect); "
                                  "check the instance's base_url")
    assert refused_listener.connections == 0


@pytest.mark.parametrize("host, kind", [("localhost", "loopback"), ("127.0.0.3", "loopback"),
                                        ("jira.localhost", "loopback")])
async def test_refused_addresses_are_never_connected_to(
    app: Any, live: LiveApi, client: httpx.AsyncClient, two_tenants: tuple[Tenant, Tenant], host: str, kind: str,
) -> None:
    """A name that resolves to loopback, and a loopback address outside JIRA_ALLOWED_NETWORKS: refused at
    creation (422), and refused at request time for an instance stored earlier, with nothing sent."""
    attacked, bystander = two_tenants
    # listening where the refused host points, to count what arrives there
    listen_on = "127.0.0.3" if host == "127.0.0.3" else "127.0.0.1"
    listener = CountingListener(listen_on).start()
    try:
        base_url = f"http://{host}:{listener.port}/jira"
        expected = f"base_url: {host} resolves to a refused address ({kind}); allow it with JIRA_ALLOWED_NETWORKS"
        created = await client.post("/api/v1/jira-instances", headers=attacked.headers,
                                    json={"name": f"refused {host}", "base_url": base_url})
        assert created.status_code == 422 and created.json()["detail"] == expected, created.text

        instance_id = await _instance_row(app, attacked, base_url)
        async def attempts() -> list[Any]:
            return [
                await client.get(f"/api/v1/jira-instances/{instance_id}/tickets/PROJ-1", params={"user": "jdoe"},
                                 headers=attacked.headers),
                await client.post(f"/api/v1/jira-instances/{instance_id}/oauth/start", json={"user": "jdoe"},
                                  headers=attacked.headers),
                await client.patch(f"/api/v1/jira-instances/{instance_id}", json={"base_url": base_url + "/x"},
                                   headers=attacked.headers),
            ]
        report = await under_attack(live, bystander, attempts)
        report.check()
        for r in report.answers:
            assert r.status_code == 422, r.text
            assert r.json()["detail"] == expected
        assert listener.connections == 0
    finally:
        listener.stop()
