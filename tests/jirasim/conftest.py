"""Fixtures: one simulator server per test session, reset before every test."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from jirasim.control import SimControl
from jirasim.testing import OAuthSigner, SimServer, generate_rsa_keypair

CONSUMER = "timetracker"
APP_ID = "tt-cloud-app"
APP_SECRET = "tt-cloud-secret"
CALLBACK_3LO = "http://127.0.0.1:9/oauth/atlassian/callback"
CLOUD_SCOPES = ["read:jira-work", "write:jira-work", "read:jira-user", "offline_access"]
# one client for ad-hoc requests: creating httpx clients is slow (TLS context per client)
http = httpx.Client(trust_env=False, verify=False, timeout=10)


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/jira"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} webhooks, got {len(self.received)}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Keys:
    def __init__(self) -> None:
        self.private_pem, self.public_pem = generate_rsa_keypair()
        self.other_private_pem, self.other_public_pem = generate_rsa_keypair()


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


def sim_config(public_pem: str) -> dict[str, Any]:
    consumers = [{"consumer_key": CONSUMER, "public_key_pem": public_pem, "name": "TimeTracker"}]
    users = [
        {"name": "alice", "display_name": "Alice Example", "timezone": "Europe/Berlin"},
        {"name": "bob", "display_name": "Bob Example", "timezone": "America/New_York"},
        {"name": "carol", "display_name": "Carol Example"},
    ]
    issues = [
        {"key": "PROJ-1", "summary": "Parent task"},
        {"key": "PROJ-2", "summary": "First subtask", "parent": "PROJ-1"},
        {"key": "PROJ-3", "summary": "Second subtask", "parent": "PROJ-1"},
        {"key": "OTHER-1", "id": 20001, "summary": "Other project"},
    ]
    fast = {"rate": 1000, "burst": 1000}
    app = {"client_id": APP_ID, "client_secret": APP_SECRET, "name": "TimeTracker", "callback_urls": [CALLBACK_3LO]}
    return {
        "atlassian": {"apps": [app], "approve_as": "alice"},
        "instances": [
            {
                "name": "acme",
                "deployment": "cloud",
                "display_timezone": "Europe/Berlin",
                "feed_delay_seconds": 0,
                "users": users,
                "issues": issues,
            },
            {
                "name": "globex",
                "deployment": "cloud",
                "feed_delay_seconds": 0,
                "users": [users[0], {"name": "dave", "display_name": "Dave Example"}],
                "issues": issues,
            },
            {
                "name": "jira1",
                "display_timezone": "Europe/Berlin",
                "feed_delay_seconds": 0,
                "approve_as": "alice",
                "rate_limit": fast,
                "consumers": consumers,
                "users": users,
                "issues": issues,
            },
            {
                "name": "jira2",
                "display_timezone": "America/New_York",
                "rate_limit": fast,
                "consumers": consumers,
                "users": users,
                "issues": issues,
            },
        ]
    }


@pytest.fixture(scope="session")
def server(keys: Keys) -> Iterator[SimServer]:
    with SimServer(sim_config(keys.public_pem)) as sim:
        yield sim


@pytest.fixture
def sim(server: SimServer) -> SimServer:
    server.control.reset()
    return server


@pytest.fixture
def control(sim: SimServer) -> SimControl:
    return sim.control


class Jira:
    """A tiny signed REST client for one instance and one access token."""

    def __init__(self, base: str, signer: OAuthSigner, timeout: float = 10.0) -> None:
        self.base = base
        self.signer = signer
        self.http = httpx.Client(auth=signer, timeout=timeout, trust_env=False, verify=False)

    def __call__(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        url = f"{self.base}/rest/api/2/{path.lstrip('/')}"
        kwargs: dict[str, Any] = {"json": json, "params": params}
        if timeout is not None:
            kwargs["timeout"] = timeout
        return self.http.request(method, url, **kwargs)

    def add_worklog(
        self, issue: str, seconds: int = 3600, *, timeout: float | None = None, **fields: Any
    ) -> httpx.Response:
        body = {"timeSpentSeconds": seconds, "started": "2026-11-25T09:00:00.000+0100"}
        body.update(fields)
        return self("POST", f"issue/{issue}/worklog", json=body, timeout=timeout)

    def close(self) -> None:
        self.http.close()


def make_jira(sim: SimServer, keys: Keys, instance: str = "jira1", user: str = "alice") -> Jira:
    token, secret = sim.control.grant_token(instance, CONSUMER, user)
    signer = OAuthSigner(CONSUMER, keys.private_pem, token, secret)
    return Jira(sim.instance_url(instance), signer)


@pytest.fixture
def alice(sim: SimServer, keys: Keys) -> Iterator[Jira]:
    jira = make_jira(sim, keys, "jira1", "alice")
    yield jira
    jira.close()


@pytest.fixture
def bob(sim: SimServer, keys: Keys) -> Iterator[Jira]:
    jira = make_jira(sim, keys, "jira1", "bob")
    yield jira
    jira.close()


class CloudJira:
    """A tiny REST client for one Cloud site through the simulated gateway, with one 3LO access token."""

    def __init__(self, sim: SimServer, site: str, access_token: str) -> None:
        self.sim = sim
        self.site = site
        self.base = sim.cloud_api_url(site)
        self.access_token = access_token

    def __call__(
        self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None, token: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.access_token}"}
        url = f"{self.base}/rest/api/2/{path.lstrip('/')}"
        return http.request(method, url, json=json, params=params, headers=headers)

    def add_worklog(self, issue: str, seconds: int = 3600, **fields: Any) -> httpx.Response:
        body = {"timeSpentSeconds": seconds, "started": "2026-11-25T09:00:00.000+0100", **fields}
        return self("POST", f"issue/{issue}/worklog", json=body)


def grant_cloud(sim: SimServer, user: str = "alice", **options: Any) -> dict[str, Any]:
    """A consent of ``user`` for the test app without the browser: the token endpoint's answer."""
    return sim.control.grant_atlassian(APP_ID, user, **options)


@pytest.fixture
def acme(sim: SimServer) -> CloudJira:
    return CloudJira(sim, "acme", grant_cloud(sim)["access_token"])
