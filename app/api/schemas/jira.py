"""JIRA instance, connection, OAuth and ticket schemas (CONTRACT sections 3, 4, 9, 11, 12 and 13)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.api.schemas.common import SingleLine, UserName
from app.domain.auth import AuthKind, Deployment, default_auth
from app.domain.cloud import normalise_site_url
from app.domain.commands import ChangeInstance, NewInstance
from app.security.rsa_keys import MAX_PEM_CHARS, KeyImportError, import_private_key

MAX_URL_CHARS = 2000
PROJECT_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,30}$")
MAX_PROJECT_KEYS = 1000
INSTANCE_EXAMPLE: dict[str, Any] = {
    "name": "Main JIRA", "base_url": "https://jira.example.com/jira", "consumer_key": "timetracker",
    "rate_limit_per_second": 10, "project_keys": ["PROJ", "OPS"], "private_key_pem": None,
}
CLOUD_INSTANCE_EXAMPLE: dict[str, Any] = {
    "name": "Acme Cloud", "deployment": "cloud", "site_url": "https://acme.atlassian.net",
    "project_keys": ["PROJ"], "rate_limit_per_second": 10,
}


def normalise_base_url(value: str) -> str:
    """http(s) only, a host, no credentials, query or fragment; the context path is kept, trailing `/` dropped."""
    url = value.strip()
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host, e.g. https://jira.example.com/jira")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("must not carry credentials (user:password@); JIRA is reached with OAuth")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError("must not have a query string or a fragment")
    try:
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError:
        raise ValueError("has an invalid port") from None
    path = parts.path.rstrip("/")
    if "//" in path:
        raise ValueError("must not contain empty path segments")
    return urlunsplit((scheme, parts.netloc.lower(), path, "", ""))


def normalise_project_keys(keys: list[str]) -> list[str]:
    """Upper-case, de-duplicated project keys like `PROJ` (letters, digits, underscore; a letter first)."""
    result: list[str] = []
    for raw in keys:
        key = raw.strip().upper()
        if not PROJECT_KEY_RE.match(key):
            raise ValueError(f"{raw!r} is not a JIRA project key (like PROJ: a letter, then letters, digits or _)")
        if key not in result:
            result.append(key)
    return result


def _stripped(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


class FieldProblem(ValueError):
    """A field that failed `check_sensitive_fields`; answered 422 without echoing the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def detail(self) -> list[dict[str, Any]]:
        """FastAPI's validation error list form, without `input`."""
        return [{"type": "value_error", "loc": ["body", self.field], "msg": self.message}]


def check_sensitive_fields(data: InstanceIn | InstancePatch) -> None:
    """Check and normalise `base_url` and `site_url` (in place) and `private_key_pem`; raises `FieldProblem`."""
    for name, normalise in (("base_url", normalise_base_url), ("site_url", normalise_site_url)):
        value = getattr(data, name)
        if value is None:
            continue
        if len(value) > MAX_URL_CHARS:
            raise FieldProblem(name, f"must be at most {MAX_URL_CHARS} characters")
        try:
            setattr(data, name, normalise(value))
        except ValueError as exc:
            raise FieldProblem(name, str(exc)) from None
    pem = getattr(data, "private_key_pem", None)
    if pem is not None:
        if len(pem) > MAX_PEM_CHARS:
            raise FieldProblem("private_key_pem", "is too long to be an RSA private key")
        try:
            import_private_key(pem)
        except KeyImportError as exc:
            raise FieldProblem("private_key_pem", f"the private key {exc}") from None


def check_return_url(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("must not contain spaces or control characters")
    return url


# base_url and private_key_pem are checked by `check_sensitive_fields`, outside pydantic: a pydantic error
# echoes its input, and neither a key nor credentials in a URL may be sent back in a 422
BaseUrl = Annotated[str, Field(examples=["https://jira.example.com/jira"],
                               description="Data Center: http(s); may carry a context path; no credentials, query or "
                                           "fragment")]
SiteUrl = Annotated[str, Field(examples=["https://acme.atlassian.net"],
                               description="Jira Cloud: the site's https:// address (never contacted: the service "
                                           "reaches the site through Atlassian's API gateway)")]
DeploymentName = Annotated[Literal["datacenter", "cloud"], Field(
    description="datacenter (a Jira Data Center or Server at base_url, the default) or cloud (a Jira Cloud site at "
                "site_url, connected through the service's OAuth 2.0 (3LO) app)")]
InstanceName = Annotated[SingleLine, Field(min_length=1, max_length=200, examples=["Main JIRA"]),
                         AfterValidator(_stripped)]
ConsumerKey = Annotated[SingleLine, Field(min_length=1, max_length=200, examples=["timetracker"]),
                        AfterValidator(_stripped)]
RateLimit = Annotated[int, Field(ge=1, le=1000, description="requests per second all workers together send")]
ProjectKeys = Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=MAX_PROJECT_KEYS),
                        AfterValidator(normalise_project_keys)]
PrivateKeyPem = str | None
Auth = Annotated[Literal["oauth1", "oauth2", "pat", "3lo"], Field(
    description="how users connect: oauth1 (OAuth 1.0a application link, the default), oauth2 (Data Center 9+ "
                "OAuth 2.0 External application link: client_id and client_secret) or pat (personal access tokens, "
                "Data Center 8.14+); Jira Cloud sites always use 3lo (the service's OAuth 2.0 app)")]
ClientId = Annotated[SingleLine, Field(min_length=1, max_length=200, examples=["1f5d8c8e7a6b4c3d"],
                                       description="OAuth 2.0: the client ID of JIRA's External application link"),
                     AfterValidator(_stripped)]
ClientSecret = Annotated[str, Field(min_length=1, max_length=500, description=(
    "OAuth 2.0: the client secret of JIRA's External application link (stored encrypted, never returned)"))]


class InstanceIn(BaseModel):
    """A JIRA Server/DC instance to sync to (without `private_key_pem` the service generates an RSA key pair), or a
    Jira Cloud site (`deployment: cloud`, `site_url`; no consumer key, no key pair)."""

    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [INSTANCE_EXAMPLE, CLOUD_INSTANCE_EXAMPLE]})

    name: InstanceName
    deployment: DeploymentName = "datacenter"
    base_url: BaseUrl | None = None
    site_url: SiteUrl | None = None
    consumer_key: ConsumerKey = "timetracker"
    rate_limit_per_second: RateLimit = 10
    project_keys: ProjectKeys = Field(default_factory=list)
    private_key_pem: PrivateKeyPem = Field(
        None, description="oauth1: import an existing unencrypted PKCS#8 or PKCS#1 RSA key of 2048 to 4096 bits")
    auth: Auth | None = Field(None, description="default: oauth1 on Data Center, 3lo on Cloud")
    client_id: ClientId | None = None
    client_secret: ClientSecret | None = None

    def command(self) -> NewInstance:
        given = frozenset(name for name in self.model_fields_set if getattr(self, name) is not None)
        deployment = Deployment(self.deployment)
        auth = AuthKind(self.auth) if self.auth is not None else default_auth(deployment)
        return NewInstance(name=self.name, base_url=self.base_url, consumer_key=self.consumer_key,
                           rate_limit_per_second=self.rate_limit_per_second, project_keys=list(self.project_keys),
                           private_key_pem=self.private_key_pem, auth=auth, client_id=self.client_id,
                           client_secret=self.client_secret, deployment=deployment, site_url=self.site_url,
                           given=given)


class InstancePatch(BaseModel):
    """Fields to change; absent fields stay. `private_key_pem` imports a new key pair (paste the answer's
    `public_key_pem` into JIRA). A new auth, or a new base_url, consumer_key, key pair (oauth1) or client_id (oauth2),
    disconnects the instance's users: their tokens belong to the old link. A new client_secret does not. On Cloud, a
    new site_url does too (the site's id is learnt again). The deployment and the webhook secret are not changed
    here."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"rate_limit_per_second": 5}]})

    name: InstanceName | None = None
    deployment: DeploymentName | None = Field(None, description="only the instance's own: it cannot be changed")
    base_url: BaseUrl | None = None
    site_url: SiteUrl | None = None
    consumer_key: ConsumerKey | None = None
    rate_limit_per_second: RateLimit | None = None
    project_keys: ProjectKeys | None = None
    private_key_pem: PrivateKeyPem = Field(
        None, description="oauth1: a new unencrypted PKCS#8 or PKCS#1 RSA key of 2048 to 4096 bits (disconnects "
                          "the users)")
    auth: Auth | None = None
    client_id: ClientId | None = None
    client_secret: ClientSecret | None = None

    def command(self) -> ChangeInstance:
        return ChangeInstance(name=self.name, base_url=self.base_url, consumer_key=self.consumer_key,
                              rate_limit_per_second=self.rate_limit_per_second,
                              project_keys=None if self.project_keys is None else list(self.project_keys),
                              private_key_pem=self.private_key_pem, auth=None if self.auth is None else
                              AuthKind(self.auth), client_id=self.client_id, client_secret=self.client_secret,
                              deployment=None if self.deployment is None else Deployment(self.deployment),
                              site_url=self.site_url)


class InstanceOut(BaseModel):
    """A JIRA instance; secrets (private key, OAuth 2.0 client secret, webhook secret) are never part of it."""

    id: uuid.UUID
    name: str
    deployment: DeploymentName
    base_url: str = Field(description="Data Center: the REST base; Cloud: the site's address (= site_url)")
    site_url: str | None = Field(None, description="cloud: the site's address")
    cloud_id: str | None = Field(None, description="cloud: the site's id, null until the first connection finds it")
    auth: Auth
    consumer_key: str | None = Field(description="oauth1 (and other Data Center kinds): the application link's "
                                                 "consumer key; null on Cloud")
    rate_limit_per_second: int
    project_keys: list[str]
    public_key_pem: str | None = Field(
        description="oauth1: paste into JIRA's application link (incoming authentication); null for other kinds")
    client_id: str | None = Field(None, description="oauth2: the client ID of JIRA's External application link")
    redirect_uri: str | None = Field(
        None, description="oauth2: the redirect URL to give JIRA's External application link "
                          "(<PUBLIC_BASE_URL>/oauth/jira2/callback); cloud: the callback URL of the service's 3LO app "
                          "(<PUBLIC_BASE_URL>/oauth/atlassian/callback)")
    created_at: datetime
    updated_at: datetime


class InstanceCreatedOut(InstanceOut):
    """The creation response: the only one that shows `webhook_secret`."""

    webhook_secret: str = Field(description="signs JIRA's webhooks to this service; shown only now")


class WebhookSecretOut(BaseModel):
    jira_instance: uuid.UUID
    webhook_secret: str = Field(description="the new secret; shown only now, the old one stops working")


class OAuthStartIn(BaseModel):
    model_config = ConfigDict(extra="ignore", json_schema_extra={
        "examples": [{"user": "jdoe", "return_url": "https://tt.example.com/", "expected_jira_user": "jdoe"}]})

    user: UserName
    return_url: Annotated[str | None, Field(max_length=2000), AfterValidator(check_return_url)] = Field(
        None, description="where the callback sends the browser (303); without it the callback answers JSON. "
                          "When the tenant lists allowed_origins, it must be on one of them")
    expected_jira_user: UserName | None = Field(
        None, description="the JIRA username (on Cloud: the Atlassian accountId) that is to approve; another account "
                          "approving stores nothing (303 to return_url with error=wrong_jira_user, or 409)")


class OAuthStartOut(BaseModel):
    authorize_url: str = Field(examples=["https://jira.example.com/jira/plugins/servlet/oauth/authorize?oauth_token=…"])


class OAuthCallbackOut(BaseModel):
    status: Literal["connected", "denied"]
    user: str
    jira_instance: uuid.UUID
    jira_username: str | None = Field(None, description="the JIRA account that approved (connected only; on Cloud "
                                                        "its accountId)")
    reason: str | None = Field(None, description="denied: why, when it was not the user's refusal (e.g. \"this "
                                                 "Atlassian account cannot reach https://acme.atlassian.net\")")


class ConnectionOut(BaseModel):
    jira_instance: uuid.UUID
    jira_instance_name: str
    auth: Auth
    status: Literal["connected", "auth_required", "denied"]
    connected_at: datetime | None
    jira_username: str | None = Field(description="the JIRA account the connection acts as (on Cloud: accountId)")
    expires_at: datetime | None = Field(
        None, description="cloud: when the consent ends (365 days after it); the user is notified 30 days before")
    updated_at: datetime


class TokenConnectionIn(BaseModel):
    """A personal access token for an instance with `auth: pat` (JIRA: Profile → Personal Access Tokens)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"personal_access_token": "NjM2MTk4NjQ0OTk5OkqHv2y9u2v1JmJ7c8Qf0l1RZc3J",
                      "expected_jira_user": "jdoe"}]})

    personal_access_token: Annotated[str, Field(
        min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$",
        description="the user's personal access token; checked with JIRA, stored encrypted, never returned")]
    expected_jira_user: UserName | None = Field(
        None, description="the JIRA username the token must belong to; a token of another account stores nothing "
                          "(409)")


class TicketOut(BaseModel):
    key: str = Field(examples=["PROJ-123"])
    summary: str
    subtask: bool
    parent: str | None = Field(None, description="the parent's key for a sub-task")


class SubticketOut(BaseModel):
    key: str
    summary: str


class SubticketsOut(BaseModel):
    items: list[SubticketOut]
