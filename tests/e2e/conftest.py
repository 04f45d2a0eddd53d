"""Shared end-to-end fixtures: the JIRA simulator, JIRA instances created through the API, connected users.

Reuse them from any e2e test (and from other test packages with
`from tests.e2e.conftest import jira_setup, connect_user  # noqa: F401`):

* `sim` (session, defined in tests/conftest.py for every package): a `SimServer` with no instances, on the port the
  test stack reserved for it (`stack.sim_port`), so it is Atlassian's platform for Jira Cloud too (ATLASSIAN_AUTH_URL
  / _API_URL point there; the service's 3LO app is registered). Every `jira_setup` call adds its own simulator
  instance with a unique name, so tests never share JIRA data and never need a reset.
* `jira_setup` (factory): `await jira_setup(**options) -> JiraSetup`. Creates a tenant (unless `tenant=` is
  given), creates a JIRA instance through `POST /api/v1/jira-instances` pointing at a fresh simulator
  instance, and sets the simulator up for the instance's `auth`: `oauth1` (default) registers the generated public
  key as a consumer; `oauth2` registers an External application link (its client id and secret go to the instance,
  its redirect URL is the service's callback); `pat` needs nothing (users store tokens); `3lo` makes the simulator
  instance a Jira Cloud site and the instance `deployment: cloud` with its `site_url` (`sim_extra` may carry
  `cloud_limits`).
  Options: `auth`, `project_keys`, `users` (simulator users, default `SIM_USERS`), `issues` (default `SIM_ISSUES`),
  `authorize_mode` ("approve" | "deny" | "manual"), `approve_as`, `sim_rate` (the simulator's own rate
  limit, default high), `rate_limit_per_second` (ours), `private_key_pem`, `client_secret` (oauth2: another than
  the link's), `name`, `tenant`, `sim_extra` (more simulator instance settings, e.g. `{"oauth2":
  {"access_token_seconds": 4}}`).
* `connect_user` (factory): `await connect_user(setup, user="jdoe", jira_user="alice") -> str` connects
  TimeTracker user `user` as JIRA user `jira_user` the way the instance's `auth` does it — the whole OAuth dance
  (start through the API → the simulator's authorize page in auto-approve mode, Atlassian's consent page for Cloud
  → our callback), or a personal access token made in the simulator and stored through the API — and returns the
  connection status.
* `revoke_access(sim control, setup, jira_user)`: what JIRA's "revoke" is for the instance's `auth`.
* `workers` (factory): `workers(n, **settings)` runs n real `python -m workers` processes on the test stack.
* `api_without_window` (session): a second API process on the same database with `CONFLICT_WINDOW_SECONDS=0`:
  every entry's last local change is "long ago" for it, so JIRA's edits are conflicts without touching a row.
  (Workers get the same with `workers(n, CONFLICT_WINDOW_SECONDS=0)`.)
* `SIM_USERS`, `SIM_ISSUES`: the default simulator data (alice, bob, carol; PROJ-1 with sub-tasks PROJ-2
  and PROJ-3, PROJ-4, OPS-1).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from jirasim.control import SimControl
from jirasim.testing import SimServer

SIM_USERS: list[dict[str, Any]] = [
    {"name": "alice", "display_name": "Alice Example", "timezone": "Europe/Berlin"},
    {"name": "bob", "display_name": "Bob Example", "timezone": "America/New_York"},
    {"name": "carol", "display_name": "Carol Example"},
]
SIM_ISSUES: list[dict[str, Any]] = [
    {"key": "PROJ-1", "summary": "Parent task"},
    {"key": "PROJ-2", "summary": "First subtask", "parent": "PROJ-1"},
    {"key": "PROJ-3", "summary": "Second subtask", "parent": "PROJ-1"},
    {"key": "PROJ-4", "summary": "Lonely task"},
    {"key": "OPS-1", "summary": "Keep the lights on"},
]


@dataclass
class JiraSetup:
    """What `jira_setup` made: a tenant, its JIRA instance (API view) and the simulator instance behind it."""

    tenant: Any  # app.services.tenants.NewTenant: tenant_id, api_key, webhook_secret
    headers: dict[str, str]  # Authorization for the tenant's API key
    instance: dict[str, Any]  # the 201 body of POST /api/v1/jira-instances (with webhook_secret)
    sim_name: str  # the simulator instance's name (for sim.control calls)
    base_url: str  # the simulator instance's URL (= instance["base_url"])
    # secrets the simulator handed out for this setup (client_secret; pat:<jira user> → token), for leak checks
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def auth(self) -> str:
        return str(self.instance.get("auth", "oauth1"))

    @property
    def instance_id(self) -> str:
        return str(self.instance["id"])

    @property
    def consumer_key(self) -> str:
        return str(self.instance["consumer_key"])

    @property
    def webhook_secret(self) -> str:
        return str(self.instance["webhook_secret"])


def oauth2_redirect_uri(settings: Any) -> str:
    return f"{str(settings.public_base_url).rstrip('/')}/oauth/jira2/callback"


CALLBACK_PATHS = {"oauth1": "/oauth/jira/callback", "oauth2": "/oauth/jira2/callback",
                  "3lo": "/oauth/atlassian/callback"}


async def make_jira_setup(
    api: httpx.AsyncClient, control: SimControl, tenant: Any, *, sim_name: str, base_url: str, settings: Any,
    auth: str = "oauth1", name: str | None = None, project_keys: list[str] | None = None,
    rate_limit_per_second: int = 100, private_key_pem: str | None = None, consumer_key: str | None = None,
    client_secret: str | None = None, sim_config: dict[str, Any] | None = None,
) -> JiraSetup:
    """A JIRA instance of `auth` made through the API on simulator instance `sim_name` (created here from
    `sim_config` unless it is None: then it exists already)."""
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    body: dict[str, Any] = {
        "name": name or f"JIRA {sim_name}", "base_url": base_url, "auth": auth,
        "rate_limit_per_second": rate_limit_per_second,
        "project_keys": ["PROJ", "OPS"] if project_keys is None else project_keys,
    }
    extra: dict[str, Any] = {}
    if auth == "3lo":
        sim_config = None if sim_config is None else cloud_site(sim_config)
        del body["base_url"]
        body.update(deployment="cloud", site_url=site_url(sim_name))
    if auth == "oauth1":
        body.update(consumer_key=consumer_key or f"tt-{sim_name}", private_key_pem=private_key_pem)
    if sim_config is not None:
        control.add_instance(sim_config)
    if auth == "oauth2":
        client = control.add_oauth2_client(sim_name, oauth2_redirect_uri(settings), name="TimeTracker",
                                           scopes=["WRITE"])
        extra["client_secret"] = client["client_secret"]
        body.update(client_id=client["client_id"], client_secret=client_secret or client["client_secret"])
    r = await api.post("/api/v1/jira-instances", json=body, headers=headers)
    assert r.status_code == 201, r.text
    instance = r.json()
    if auth == "3lo":
        # the site's API behind the gateway
        base_url = next(i["url"] for i in control.instances() if i["name"] == sim_name)
    if auth == "oauth1":
        control.add_consumer(sim_name, instance["consumer_key"], instance["public_key_pem"], name="TimeTracker")
    return JiraSetup(tenant, headers, instance, sim_name, base_url, extra)


def site_url(sim_name: str) -> str:
    """The address of the simulator's Cloud site `sim_name` (the simulator's default)."""
    return f"https://{sim_name}.atlassian.net"


def cloud_site(config: dict[str, Any]) -> dict[str, Any]:
    """A simulator instance config as a Jira Cloud site: no Data Center rate limit (the site has Cloud's limits)."""
    site = {k: v for k, v in config.items() if k not in ("rate_limit", "authorize_mode", "approve_as")}
    return {**site, "deployment": "cloud", "site_url": site_url(config["name"])}


@pytest.fixture
def jira_setup(api: httpx.AsyncClient, sim: SimServer, make_tenant: Any,
               settings: Any) -> Callable[..., Awaitable[JiraSetup]]:
    async def make(
        *, tenant: Any = None, authorize_mode: str = "approve", approve_as: str | None = "alice",
        sim_rate: float = 1000, users: list[dict[str, Any]] | None = None, issues: list[dict[str, Any]] | None = None,
        sim_extra: dict[str, Any] | None = None, **options: Any,
    ) -> JiraSetup:
        sim_name = f"jira-{uuid.uuid4().hex[:10]}"
        config = {
            "name": sim_name, "feed_delay_seconds": 0, "authorize_mode": authorize_mode, "approve_as": approve_as,
            "rate_limit": {"rate": sim_rate, "burst": max(1, int(sim_rate))},
            "users": SIM_USERS if users is None else users,
            "issues": SIM_ISSUES if issues is None else issues,
            **(sim_extra or {}),
        }
        return await make_jira_setup(api, sim.control, tenant or await make_tenant(), sim_name=sim_name,
                                     base_url=sim.instance_url(sim_name), settings=settings, sim_config=config,
                                     **options)

    return make


async def oauth_dance(
    api: httpx.AsyncClient, setup: JiraSetup, user: str, *, return_url: str | None = None,
    expected_jira_user: str | None = None,
) -> httpx.Response:
    """Start through the API, follow the simulator's authorize page (approve/deny per its mode) and call our
    callback with the parameters the simulator redirected to. Returns the callback's response."""
    body: dict[str, Any] = {"user": user}
    if return_url is not None:
        body["return_url"] = return_url
    if expected_jira_user is not None:
        body["expected_jira_user"] = expected_jira_user
    r = await api.post(f"/api/v1/jira-instances/{setup.instance_id}/oauth/start", json=body, headers=setup.headers)
    assert r.status_code == 200, r.text
    async with httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=10) as browser:
        page = await browser.get(r.json()["authorize_url"])
    assert page.status_code == 302, page.text
    callback = urlsplit(page.headers["location"])
    assert callback.path == CALLBACK_PATHS[setup.auth]
    return await api.get(f"{callback.path}?{callback.query}")


async def store_token(api: httpx.AsyncClient, control: SimControl, setup: JiraSetup, user: str,
                      jira_user: str) -> httpx.Response:
    """A personal access token of `jira_user` made in the simulator, stored as `user`'s connection."""
    token = control.create_pat(setup.sim_name, jira_user, name="TimeTracker")["token"]
    setup.extra[f"pat:{jira_user}"] = token
    return await api.put(f"/api/v1/users/{user}/connections/{setup.instance_id}",
                         json={"personal_access_token": token}, headers=setup.headers)


async def connect_as(api: httpx.AsyncClient, control: SimControl, setup: JiraSetup, user: str, jira_user: str) -> str:
    """Connect `user` as `jira_user` the way the instance's `auth` does; returns the connection status."""
    if setup.auth == "pat":
        r = await store_token(api, control, setup, user, jira_user)
    elif setup.auth == "3lo":
        control.set_atlassian(authorize_mode="approve", approve_as=jira_user, approve_sites=None)
        r = await oauth_dance(api, setup, user)
    else:
        control.set_settings(setup.sim_name, authorize_mode="approve", approve_as=jira_user)
        r = await oauth_dance(api, setup, user)
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


def revoke_access(control: SimControl, setup: JiraSetup, jira_user: str) -> int:
    """What revoking the service's access in JIRA is for the instance's `auth`; returns how many tokens ended."""
    if setup.auth == "pat":
        return control.revoke_pats(setup.sim_name, user=jira_user)
    if setup.auth == "oauth2":
        return control.revoke_oauth2_tokens(setup.sim_name, user=jira_user)
    if setup.auth == "3lo":
        return control.revoke_atlassian(user=jira_user)
    return control.revoke(setup.sim_name, user=jira_user)


@pytest.fixture
async def workers(stack: Any, app: Any, redis: Any) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `workers(n, output=None, **settings)` starts n `python -m workers` processes (settings as env
    overrides, e.g. SYNC_MAX_ATTEMPTS=3; `output`: a file for their logs); all are stopped (SIGTERM) after the test.

    Afterwards the queue is emptied and nothing is left due: a test that ends with a backlog (on purpose)
    must not hand it to the next test's workers, whose measurements it would disturb.
    """
    from sqlalchemy import text

    from tests.e2e.engine_support import Workers

    started: list[Workers] = []

    def make(n: int = 1, *, output: Any = None, **settings: Any) -> Workers:
        w = Workers(stack.env, output=output, **settings).start(n)
        started.append(w)
        return w

    yield make
    for w in started:
        await asyncio.to_thread(w.stop)
    if started:
        async with app.state.sessionmaker() as session:
            await session.execute(text("UPDATE entries SET due_at = NULL WHERE due_at IS NOT NULL"))
            await session.commit()
        # a worker killed on purpose leaves its push leases behind until they lapse: the next test starts free
        leftover = [key async for key in redis.scan_iter(match="ttsync:push:*")]
        if leftover:
            await redis.delete(*leftover)


@pytest.fixture
def connect_user(api: httpx.AsyncClient, sim: SimServer) -> Callable[..., Awaitable[str]]:
    async def connect(setup: JiraSetup, user: str = "jdoe", *, jira_user: str = "alice") -> str:
        return await connect_as(api, sim.control, setup, user, jira_user)

    return connect


@pytest.fixture(scope="session")
async def api_without_window(settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    from app.main import create_app

    application = create_app(settings.model_copy(update={"conflict_window_seconds": 0}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
