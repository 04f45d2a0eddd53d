"""Shared fakes for the JIRA client tests (no tests here; named test_jira_* to stay in the client's files)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from oauthlib.oauth1 import RequestValidator, ResourceEndpoint
from oauthlib.oauth1.rfc5849 import signature as oauthlib_signature

from app.jira.calls import JiraCall
from app.jira.client import JiraClient, JiraTarget
from app.jira.credentials import Credential, OAuth1Signature
from app.jira.gate import InstanceRef, Priority
from app.jira.signing import KeyCache, OAuthConsumer

PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = PRIVATE_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = PRIVATE_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()

BASE = "https://jira.example.test/jira"
API = BASE + "/rest/api/2"
CONSUMER_KEY = "timetracker"
ACCESS_TOKEN = "access-token-1"
INSTANCE = InstanceRef(uuid.UUID("00000000-0000-0000-0000-000000000001"), 10)


KEYS = KeyCache()


def oauth1(token: str | None = ACCESS_TOKEN, private_key: str = PRIVATE_PEM) -> OAuth1Signature:
    """The OAuth 1.0a credential the services build: our consumer, a key parsed once, the user's token."""
    return OAuth1Signature(OAuthConsumer(CONSUMER_KEY, KEYS.load(private_key)), token=token)


def make_target(*, credential: Credential | None = None, access_token: str | None = ACCESS_TOKEN,
                base_url: str = BASE + "/", priority: Priority = Priority.USER) -> JiraTarget:
    return JiraTarget(INSTANCE, base_url, credential or oauth1(access_token), priority)


@dataclass
class RecordingGate:
    """A gate that lets everything through and remembers what it was told."""

    acquired: list[tuple[InstanceRef, Priority]] = field(default_factory=list)
    observed: list[tuple[int | None, dict[str, str]]] = field(default_factory=list)
    writes: list[str | None] = field(default_factory=list)  # the issue each request wrote to (None: not a write)

    async def acquire(self, instance: InstanceRef, priority: Priority, *, max_wait: float | None = None,
                      write_to: str | None = None) -> float:
        self.acquired.append((instance, priority))
        self.writes.append(write_to)
        return 0.0

    async def observe(self, instance: InstanceRef, status: int | None, headers: Mapping[str, str], *,
                      sent: bool = True, write_to: str | None = None, objects: int = 0) -> None:
        self.observed.append((status, {k.lower(): v for k, v in headers.items()}))

    def left(self, instance: InstanceRef) -> None:
        self.left_count = getattr(self, "left_count", 0) + 1


@dataclass
class Harness:
    client: JiraClient
    gate: RecordingGate
    calls: list[JiraCall]
    sleeps: list[float]


def make_client(http: httpx.AsyncClient, **kwargs: object) -> Harness:
    gate = RecordingGate()
    calls: list[JiraCall] = []
    sleeps: list[float] = []

    async def on_call(call: JiraCall) -> None:
        calls.append(call)

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    kwargs.setdefault("timeout_seconds", 5)
    client = JiraClient(http, gate=gate, on_call=on_call, sleep=sleep, **kwargs)  # type: ignore[arg-type]
    return Harness(client, gate, calls, sleeps)


class _Validator(RequestValidator):
    """Accepts our consumer and token; everything else is checked by oauthlib itself."""

    enforce_ssl = False

    @property
    def allowed_signature_methods(self) -> tuple[str, ...]:
        return ("RSA-SHA1",)

    @property
    def dummy_client(self) -> str:
        return "dummy"

    @property
    def dummy_access_token(self) -> str:
        return "dummy"

    def check_client_key(self, client_key: str) -> bool:
        return True

    def check_access_token(self, request_token: str) -> bool:
        return True

    def check_nonce(self, nonce: str) -> bool:
        return True

    def validate_client_key(self, client_key: str, request: object) -> bool:
        return client_key == CONSUMER_KEY

    def validate_access_token(self, client_key: str, token: str, request: object) -> bool:
        return token == ACCESS_TOKEN

    def validate_timestamp_and_nonce(self, *args: object, **kwargs: object) -> bool:
        return True

    def validate_realms(self, *args: object, **kwargs: object) -> bool:
        return True

    def get_rsa_key(self, client_key: str, request: object) -> str:
        return PUBLIC_PEM


def oauthlib_accepts_resource_request(request: httpx.Request) -> bool:
    """oauthlib's own server-side check of a request signed with an access token."""
    endpoint = ResourceEndpoint(_Validator())
    valid, _ = endpoint.validate_protected_resource_request(
        str(request.url), request.method, request.content.decode() or None, dict(request.headers)
    )
    return bool(valid)


def oauthlib_verifies_signature(request: httpx.Request) -> bool:
    """oauthlib's RSA-SHA1 verification alone (for token requests, which carry no access token)."""
    endpoint = ResourceEndpoint(_Validator())
    oreq = endpoint._create_request(
        str(request.url), request.method, request.content.decode() or None, dict(request.headers)
    )
    assert oreq.params, "no OAuth parameters found"
    return bool(oauthlib_signature.verify_rsa_sha1(oreq, PUBLIC_PEM))


def oauth_header_params(request: httpx.Request) -> dict[str, str]:
    from urllib.parse import unquote

    header = request.headers["authorization"]
    assert header.startswith("OAuth ")
    params = {}
    for part in header[len("OAuth "):].split(", "):
        key, _, value = part.partition("=")
        params[unquote(key)] = unquote(value.strip('"'))
    return params


def path_of(request: httpx.Request) -> str:
    return urlsplit(str(request.url)).path
