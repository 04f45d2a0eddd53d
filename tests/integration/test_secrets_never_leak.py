"""No secret in clear anywhere but its one creation response: logs (at DEBUG), audit rows, API answers, the database.

Secrets: the tenant's API key and webhook secret, the instance's private key and webhook secret, the user's
access token and token secret, the request token's secret.
"""

# the simulator fixtures are imported from tests/e2e/conftest.py, so test arguments shadow them
# ruff: noqa: F811

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import select

from jirasim.testing import SimServer
from tests.e2e.conftest import JiraSetup, jira_setup  # noqa: F401
from tests.leaks import captured_logs, database_dump


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    with captured_logs() as out:
        yield out


async def _connect_and_push(api: httpx.AsyncClient, app: Any, settings: Any, setup: JiraSetup,
                            sim: SimServer) -> tuple[list[httpx.Response], dict[str, str]]:
    """Connect jdoe through the dance, push an entry with a real worker engine, look tickets up."""
    from app.db.repositories import jira as jira_repo
    from app.services.credentials import private_key_pem
    from workers.context import build_context

    responses: list[httpx.Response] = []
    r = await api.post(f"/api/v1/jira-instances/{setup.instance_id}/oauth/start", json={"user": "jdoe"},
                       headers=setup.headers)
    responses.append(r)
    async with httpx.AsyncClient(trust_env=False) as browser:
        page = await browser.get(r.json()["authorize_url"])
    request_token = httpx.URL(r.json()["authorize_url"]).params["oauth_token"]
    callback = urlsplit(page.headers["location"])
    responses.append(await api.get(urlunsplit(("", "", callback.path, callback.query, ""))))
    assert responses[-1].json()["status"] == "connected"

    entry = {"user": "jdoe", "ticket": "PROJ-2", "date": "2026-11-25", "start": "09:00", "duration": 45,
             "description": "leak check"}
    responses.append(await api.put("/api/v1/entries/leak1", json=entry, headers=setup.headers))
    context = build_context(settings)
    try:
        assert await context.push(setup.tenant.tenant_id, "leak1") is None
    finally:
        await context.close()
    base = f"/api/v1/jira-instances/{setup.instance_id}"
    for path in ("/api/v1/entries/leak1", f"{base}/tickets/PROJ-2?user=jdoe",
                 f"{base}/tickets/PROJ-1/subtickets?user=jdoe",
                 "/api/v1/users/jdoe/connections", "/api/v1/jira-instances", base, "/api/v1/audit?limit=1000",
                 "/api/v1/notifications?user=jdoe", "/api/v1/changes?after=0"):
        responses.append(await api.get(path, headers=setup.headers))
    assert responses[-9].json()["sync"]["status"] == "synced", responses[-9].text

    [access] = [t for t in sim.sim.instances[setup.sim_name].state.access_tokens.values() if t.user == "alice"]
    request = sim.sim.instances[setup.sim_name].state.request_tokens[request_token]
    async with app.state.sessionmaker() as session:
        instance = await jira_repo.get_instance(session, setup.tenant.tenant_id, uuid.UUID(setup.instance_id))
        assert instance is not None
        pem = private_key_pem(app.state.secret_box, instance).decode()
    secrets = {
        "api key": setup.tenant.api_key, "tenant webhook secret": setup.tenant.webhook_secret,
        "instance webhook secret": setup.webhook_secret, "access token": access.token,
        "token secret": access.secret, "request token secret": request.secret,
        "private key": pem.splitlines()[5],  # one line of the key body is enough to be found
    }
    return responses, secrets


async def test_no_secret_in_logs_audit_or_responses(
    api: httpx.AsyncClient, app: Any, settings: Any, jira_setup: Any, sim: SimServer,
    log_lines: io.StringIO,
) -> None:
    from app.db.models import AuditRow

    setup: JiraSetup = await jira_setup()
    logging.getLogger("app.test").debug("api key in a message: Bearer %s", setup.tenant.api_key)
    responses, secrets = await _connect_and_push(api, app, settings, setup, sim)

    logged = log_lines.getvalue()
    assert "HTTP Request" in logged or "app.test" in logged  # the handler did see traffic
    async with app.state.sessionmaker() as session:
        audit = [" ".join(str(v) for v in (a.action, a.outcome, a.detail, a.http_status)) for a in
                 (await session.execute(select(AuditRow).where(AuditRow.tenant_id == setup.tenant.tenant_id)))
                 .scalars()]
    assert any(a.startswith("jira.fetch_access_token") for a in audit)
    for name, value in secrets.items():
        assert value not in logged, f"{name} in a log line"
        assert not any(value in row for row in audit), f"{name} in an audit row"
        for response in responses:
            assert value not in response.text, f"{name} in {response.request.url}"
            assert value not in str(response.headers), f"{name} in headers of {response.request.url}"


async def test_database_dump_holds_no_token_or_private_key_in_clear(
    api: httpx.AsyncClient, app: Any, settings: Any, jira_setup: Any, sim: SimServer, tmp_path: Path,
) -> None:
    setup: JiraSetup = await jira_setup()
    _, secrets = await _connect_and_push(api, app, settings, setup, sim)
    text = database_dump(settings, tmp_path)
    assert "jira_connections" in text and "oauth_requests" in text
    for name in ("access token", "token secret", "request token secret", "private key", "api key",
                 "tenant webhook secret", "instance webhook secret"):
        assert secrets[name] not in text, f"{name} in the database dump"
    assert "PRIVATE KEY-----" not in text


@pytest.mark.parametrize(
    "line",
    [
        'Authorization: OAuth oauth_consumer_key="tt", oauth_token="SECRETVALUE1", oauth_signature="SECRETVALUE1"',
        "POST /access-token?oauth_token=SECRETVALUE1&oauth_verifier=SECRETVALUE1",
        "oauth_token=SECRETVALUE1&oauth_token_secret=SECRETVALUE1",
        "JiraTarget(access_token='SECRETVALUE1', token_secret='SECRETVALUE1')",
        '{"access_token": "SECRETVALUE1", "webhook_secret": "SECRETVALUE1"}',
        "Bearer tts_SECRETVALUE1SECRETVALUE1SECRETVALUE1",
        "whsec_SECRETVALUE1SECRETVALUE1SECRETVALUE1",
        "grant_type=refresh_token&refresh_token=SECRETVALUE1&client_secret=SECRETVALUE1&redirect_uri=x",
        "grant_type=authorization_code&code=SECRETVALUE1&code_verifier=SECRETVALUE1",
        '{"personal_access_token": "SECRETVALUE1", "client_secret": "SECRETVALUE1"}',
        "GET /oauth/jira2/callback?code=SECRETVALUE1&state=SECRETVALUE1 HTTP/1.1",
        "Authorization: Bearer NjM2MTk4+SECRETVALUE1/x==",
    ],
)
def test_redacting_filter_covers_oauth_and_credential_renderings(line: str) -> None:
    from app.logging_setup import RedactingFilter

    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%s", (line,), None)
    RedactingFilter().filter(record)
    assert "SECRETVALUE1" not in record.getMessage()
