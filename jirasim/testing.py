"""Test helpers: run the simulator in a background thread and sign requests.

with SimServer(config) as sim:
    sim.url, sim.instance_url("jira1"), sim.control.counters("jira1")
"""

from __future__ import annotations

import asyncio
import functools
import html
import re
import secrets
import socket
import threading
import time
from collections.abc import Generator
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from oauthlib.oauth1 import (  # type: ignore[import-untyped,unused-ignore]
    SIGNATURE_RSA,
)
from oauthlib.oauth1 import (
    Client as OAuthClient,
)

from .app import JiraSimApp, create_app
from .config import SimConfig
from .control import SimControl, shared_ssl_context
from .instance import CloudSite
from .oauth2 import pkce_challenge
from .simulator import Simulator


def generate_rsa_keypair(bits: int = 2048) -> tuple[str, str]:
    """Return ``(private_key_pem, public_key_pem)`` (PKCS#8 / SubjectPublicKeyInfo)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return private_pem, public_pem


@functools.lru_cache(maxsize=32)
def _load_private_key(pem: str) -> Any:
    """Parsing a PEM private key validates it (~50 ms): do it once per key, not per request."""
    return serialization.load_pem_private_key(pem.encode("ascii"), password=None)


class OAuthSigner(httpx.Auth):
    """httpx auth that signs every request with OAuth 1.0a RSA-SHA1 (via oauthlib).

    ``body_hash`` adds ``oauth_body_hash`` for non-form bodies (oauthlib does that
    by itself whenever a body is signed).
    """

    requires_request_body = True

    def __init__(
        self,
        consumer_key: str,
        private_key_pem: str,
        token: str | None = None,
        token_secret: str | None = None,
        *,
        callback: str | None = None,
        verifier: str | None = None,
        body_hash: bool = True,
    ) -> None:
        self.consumer_key = consumer_key
        self.private_key_pem = private_key_pem
        self._rsa_key = _load_private_key(private_key_pem)
        self.token = token
        self.token_secret = token_secret
        self.callback = callback
        self.verifier = verifier
        self.body_hash = body_hash

    def client(self, **overrides: Any) -> Any:
        options: dict[str, Any] = {
            "signature_method": SIGNATURE_RSA,
            "rsa_key": self._rsa_key,
            "resource_owner_key": self.token,
            "resource_owner_secret": self.token_secret,
            "callback_uri": self.callback,
            "verifier": self.verifier,
        }
        options.update(overrides)
        return OAuthClient(self.consumer_key, **options)

    def sign(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        content_type: str | None = None,
        **overrides: Any,
    ) -> dict[str, str]:
        """Headers (incl. Authorization) for a request; ``overrides`` go to oauthlib's Client
        (e.g. ``timestamp="…"``, ``nonce="…"``)."""
        headers: dict[str, str] = {}
        text: str | None = None
        if body and self.body_hash:
            text = body.decode("utf-8")
            headers["Content-Type"] = content_type or "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        _, signed_headers, _ = self.client(**overrides).sign(url, http_method=method, body=text, headers=headers)
        return {str(k): str(v) for k, v in signed_headers.items()}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        body = request.content
        content_type = request.headers.get("content-type")
        form = content_type is not None and "application/x-www-form-urlencoded" in content_type
        text: str | None = None
        headers: dict[str, str] = {}
        if body and (form or self.body_hash):
            text = body.decode("utf-8")
            headers["Content-Type"] = content_type or "application/json"
        _, signed, _ = self.client().sign(str(request.url), http_method=request.method, body=text, headers=headers)
        request.headers["Authorization"] = signed["Authorization"]
        yield request


def oauth_dance(
    instance_url: str,
    consumer_key: str,
    private_key_pem: str,
    callback: str = "http://127.0.0.1:9/callback",
) -> tuple[str, str]:
    """Run request-token -> authorize (instance mode ``approve``) -> access-token."""
    servlet = instance_url.rstrip("/") + "/plugins/servlet/oauth"
    with httpx.Client(trust_env=False, follow_redirects=False, verify=shared_ssl_context()) as http:
        r = http.post(
            f"{servlet}/request-token",
            auth=OAuthSigner(consumer_key, private_key_pem, callback=callback),
        )
        r.raise_for_status()
        request_token = dict(parse_qsl(r.text))
        r = http.get(f"{servlet}/authorize", params={"oauth_token": request_token["oauth_token"]})
        if r.status_code != 302:
            raise RuntimeError(f"authorize did not redirect: {r.status_code} {r.text[:200]}")
        redirect = dict(parse_qsl(urlsplit(r.headers["location"]).query))
        if redirect.get("oauth_verifier") in (None, "denied"):
            raise RuntimeError("authorization was denied")
        r = http.post(
            f"{servlet}/access-token",
            auth=OAuthSigner(
                consumer_key,
                private_key_pem,
                request_token["oauth_token"],
                request_token["oauth_token_secret"],
                verifier=redirect["oauth_verifier"],
            ),
        )
        r.raise_for_status()
        access = dict(parse_qsl(r.text))
        return access["oauth_token"], access["oauth_token_secret"]


_HIDDEN_INPUT = re.compile(r'<input type="hidden" name="([^"]*)" value="([^"]*)">')


def consent(
    authorize_url: str,
    *,
    user: str | None = None,
    allow: bool = True,
    sites: list[str] | None = None,
    client: httpx.Client | None = None,
) -> str:
    """Play the person at any of the simulator's authorize pages (OAuth 1.0a, Data Center OAuth 2.0, Atlassian)
    and return the ``Location`` it redirects to.

    In ``approve``/``deny`` mode the page redirects at once (``user``/``sites`` are then the configured
    ``approve_as``/``approve_sites``); in ``manual`` mode the form is posted back with ``user`` (a user name, or
    an accountId on Atlassian's page), ``sites`` (Atlassian: site names, URLs or cloud ids) and Allow or Deny.
    """
    http = client or httpx.Client(trust_env=False, verify=shared_ssl_context())
    try:
        page = http.get(authorize_url, follow_redirects=False)
        if page.status_code in (302, 303):
            return str(page.headers["location"])
        if page.status_code != 200 or 'name="action"' not in page.text:
            raise RuntimeError(f"authorize answered {page.status_code}: {page.text[:300]}")
        form = {html.unescape(k): html.unescape(v) for k, v in _HIDDEN_INPUT.findall(page.text)}
        action = re.search(r'<form method="post" action="([^"]*)"', page.text)
        assert action is not None
        form["action"] = "allow" if allow else "deny"
        if user is not None:
            form["user"] = user
        if sites is not None:
            form["sites"] = ",".join(sites)
        answer = http.post(html.unescape(action.group(1)), data=form, follow_redirects=False)
        if answer.status_code not in (302, 303):
            raise RuntimeError(f"consent answered {answer.status_code}: {answer.text[:300]}")
        return str(answer.headers["location"])
    finally:
        if client is None:
            http.close()


def pkce_pair() -> tuple[str, str]:
    """A PKCE ``(code_verifier, S256 code_challenge)`` pair (RFC 7636)."""
    verifier = secrets.token_urlsafe(48)
    return verifier, pkce_challenge(verifier)


def _free_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class SimServer:
    """Runs the simulator with uvicorn in a daemon thread on a loopback port."""

    def __init__(
        self,
        config: SimConfig | dict[str, Any] | str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.app: JiraSimApp = create_app(config)
        self.host = host
        self._sock = _free_socket(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._config = uvicorn.Config(
            self.app,
            loop="asyncio",
            log_level=log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._control: SimControl | None = None

    @property
    def sim(self) -> Simulator:
        return self.app.sim

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def instance_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    @property
    def atlassian_auth_url(self) -> str:
        """What the service takes as ``ATLASSIAN_AUTH_URL``."""
        return self.url + self.sim.config.atlassian.auth_path

    @property
    def atlassian_api_url(self) -> str:
        """What the service takes as ``ATLASSIAN_API_URL``."""
        return self.url + self.sim.config.atlassian.api_path

    def cloud_id(self, site: str) -> str:
        inst = self.sim.instances[site]
        assert isinstance(inst, CloudSite), f"{site} is not a Cloud site"
        return inst.cloud_id

    def cloud_api_url(self, site: str) -> str:
        """The gateway base of a Cloud site's REST API: ``<api>/ex/jira/<cloudId>`` (append ``/rest/api/2/...``)."""
        return f"{self.atlassian_api_url}/ex/jira/{self.cloud_id(site)}"

    @property
    def control(self) -> SimControl:
        if self._control is None:
            self._control = SimControl(self.url)
        return self._control

    def max_requests_in_any_window(self, instance: str, window: float = 1.0, accepted_only: bool = False) -> int:
        """Same as ``control.max_requests_in_any_window`` but read in-process."""
        return self.sim.observer.max_requests_in_any_window(instance, window, accepted_only)

    def counters(self, instance: str) -> dict[str, Any]:
        """Counters of an instance, read in-process (no HTTP)."""
        return self.sim.observer.snapshot(instance)

    def start(self, timeout: float = 10.0) -> SimServer:
        def run() -> None:
            asyncio.run(self._server.serve(sockets=[self._sock]))

        self._thread = threading.Thread(target=run, name=f"jirasim-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("jirasim server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        self.sim.wake_paused()  # end injected hangs so shutdown is quick and quiet
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._sock.close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
