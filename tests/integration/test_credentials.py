"""`Credentials`: the one place a connection becomes an authenticated target (CONTRACT 4 and 13), on rows made in
memory, JIRA mocked with respx (the OAuth 2.0 renewal against the simulator: tests/integration/test_token_refresh.py).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx
import pytest
import respx

from app.config import EncryptionKey
from app.db.models import ConnectionRow, JiraInstanceRow
from app.jira import signing
from app.security.secrets import SecretBox, binding
from app.services.credentials import Credentials
from tests.unit.test_jira_support import API, BASE, PRIVATE_PEM, make_client, oauthlib_accepts_resource_request

BOX = SecretBox([EncryptionKey("k1", os.urandom(32))])


def credentials_on(app: Any, http: httpx.AsyncClient) -> Credentials:
    return Credentials(BOX, sessionmaker=app.state.sessionmaker, jira=make_client(http).client, redis=app.state.redis,
                       settings=app.state.settings)


def instance_row(**values: object) -> JiraInstanceRow:
    instance_id = uuid.uuid4()
    row = JiraInstanceRow(id=instance_id, tenant_id=uuid.uuid4(), name="JIRA", base_url=BASE, auth="oauth1",
                          consumer_key="timetracker", rate_limit_per_second=10, project_keys=["PROJ"],
                          private_key_enc=BOX.seal(PRIVATE_PEM, binding("jira_instances", "private_key", instance_id)),
                          public_key_pem="unused", webhook_secret_enc=b"")
    for name, value in values.items():
        setattr(row, name, value)
    return row


def connection_row(instance: JiraInstanceRow, token: str = "access-token-1",
                   status: str = "connected") -> ConnectionRow:
    connection_id = uuid.uuid4()
    return ConnectionRow(id=connection_id, tenant_id=instance.tenant_id, jira_instance_id=instance.id, user="jdoe",
                         status=status,
                         access_token_enc=BOX.seal(token, binding("jira_connections", "access_token", connection_id)))


async def test_oauth1_target_signs_with_the_instance_key_and_the_users_token(app: Any) -> None:
    instance = instance_row()
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        target = credentials_on(app, http).user_target(instance, connection_row(instance))
        assert target is not None and target.credential.kind == "oauth1"
        route = mock.get(f"{API}/myself").mock(return_value=httpx.Response(200, json={"name": "alice"}))
        await make_client(http).client.myself(target)
    assert oauthlib_accepts_resource_request(route.calls.last.request)


async def test_the_private_key_is_parsed_once_across_many_targets(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[bytes] = []
    real = signing.load_pem_private_key

    def counting(data: bytes, password: bytes | None = None, **options: Any) -> object:
        parsed.append(data)
        return real(data, password=password, **options)

    monkeypatch.setattr(signing, "load_pem_private_key", counting)
    instance = instance_row()
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        credentials = credentials_on(app, http)
        mock.get(f"{API}/myself").mock(return_value=httpx.Response(200, json={"name": "jdoe"}))
        harness = make_client(http)
        for _ in range(25):
            # a fresh target each time, as the services build one per job from the database row
            target = credentials.user_target(instance, connection_row(instance))
            assert target is not None
            await harness.client.myself(target)
    assert len(parsed) == 1


async def test_no_target_without_a_usable_connection(app: Any) -> None:
    instance = instance_row()
    async with httpx.AsyncClient() as http:
        credentials = credentials_on(app, http)
    assert credentials.user_target(instance, connection_row(instance, status="auth_required")) is None
    bare = connection_row(instance)
    bare.access_token_enc = None
    assert credentials.user_target(instance, bare) is None


async def test_pat_target_sends_the_token_as_bearer(app: Any) -> None:
    instance = instance_row(auth="pat", private_key_enc=None, public_key_pem=None)
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        target = credentials_on(app, http).user_target(instance, connection_row(instance, token="pat-value"))
        assert target is not None and target.credential.kind == "pat"
        route = mock.get(f"{API}/myself").mock(return_value=httpx.Response(200, json={"name": "alice"}))
        await make_client(http).client.myself(target)
    assert route.calls.last.request.headers["authorization"] == "Bearer pat-value"
    assert "pat-value" not in repr(target)
