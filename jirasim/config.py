"""Configuration model of the simulator (parsed from JSON / Python dicts)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

AUTHORIZE_MODES = ("approve", "deny", "manual")
DEPLOYMENTS = ("datacenter", "cloud")
AUTH_SERVER_NAME = "atlassian"  # the authorization server's name in the request log and counters
RESERVED_NAMES = ("_sim", AUTH_SERVER_NAME)
DAY = 86400.0


class ConfigError(ValueError):
    """Raised for an invalid simulator configuration."""


def _get(data: dict[str, Any], *names: str, default: Any = None) -> Any:
    """Return the first present key among ``names`` (snake_case or camelCase)."""
    for name in names:
        if name in data:
            return data[name]
    return default


def check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {tz!r}") from exc
    return tz


def check_loopback_url(url: str) -> str:
    """Webhook targets must stay on the loopback interface."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"invalid webhook URL {url!r}")
    host = parts.hostname
    if host == "localhost":
        return url
    try:
        if ipaddress.ip_address(host).is_loopback:
            return url
    except ValueError:
        pass
    raise ConfigError(f"webhook URL must point to a loopback address, got {url!r}")


@dataclass
class ConsumerConfig:
    consumer_key: str
    public_key_pem: str
    name: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: Path | None = None) -> ConsumerConfig:
        key = _get(data, "consumer_key", "consumerKey")
        if not key:
            raise ConfigError("consumer needs consumer_key")
        pem = _get(data, "public_key_pem", "publicKeyPem", "public_key")
        pem_file = _get(data, "public_key_file", "publicKeyFile")
        if not pem and pem_file:
            path = Path(pem_file)
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            pem = path.read_text()
        if not pem or "PUBLIC KEY" not in pem:
            raise ConfigError(f"consumer {key!r} needs public_key_pem (PEM public key)")
        return cls(consumer_key=str(key), public_key_pem=str(pem), name=str(data.get("name", key)))


OAUTH2_SCOPES = ("READ", "WRITE", "ADMIN", "SYSTEM_ADMIN")


def check_oauth2_scopes(raw: str | list[str]) -> tuple[str, ...]:
    """Data Center OAuth 2.0 scopes (space-separated or a list), each one of OAUTH2_SCOPES."""
    names = raw.split() if isinstance(raw, str) else [str(s) for s in raw]
    unknown = [n for n in names if n not in OAUTH2_SCOPES]
    if unknown or not names:
        raise ConfigError(f"OAuth 2.0 scopes must be among {OAUTH2_SCOPES}, got {raw!r}")
    return tuple(names)


@dataclass
class OAuth2ClientConfig:
    """An incoming "External application" link of a Data Center instance (JIRA as OAuth 2.0 provider)."""

    client_id: str
    client_secret: str
    redirect_uri: str
    name: str = ""
    scopes: tuple[str, ...] = ("WRITE",)  # what the link permits; requests may ask for these or less

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OAuth2ClientConfig:
        client_id = str(_get(data, "client_id", "clientId", default="") or "")
        secret = str(_get(data, "client_secret", "clientSecret", default="") or "")
        redirect = str(_get(data, "redirect_uri", "redirectUri", "redirect_url", default="") or "")
        if not client_id or not secret:
            raise ConfigError("an OAuth 2.0 client needs client_id and client_secret")
        parts = urlsplit(redirect)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"OAuth 2.0 client {client_id!r} needs an absolute redirect_uri, got {redirect!r}")
        return cls(
            client_id=client_id,
            client_secret=secret,
            redirect_uri=redirect,
            name=str(data.get("name") or client_id),
            scopes=check_oauth2_scopes(data.get("scopes", data.get("scope", ["WRITE"]))),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "redirect_uri": self.redirect_uri,
            "scopes": list(self.scopes),
        }


@dataclass
class OAuth2Settings:
    """Lifetimes of the Data Center OAuth 2.0 provider (JIRA's atlassian.oauth2.provider.* system properties)."""

    access_token_seconds: float = 3600.0
    refresh_token_seconds: float = 7776000.0  # 90 days
    code_seconds: float = 10.0  # atlassian.oauth2.provider.max.client.delay.seconds

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> OAuth2Settings:
        data = data or {}
        cfg = cls(
            access_token_seconds=float(data.get("access_token_seconds", 3600.0)),
            refresh_token_seconds=float(data.get("refresh_token_seconds", 7776000.0)),
            code_seconds=float(data.get("code_seconds", 10.0)),
        )
        if min(cfg.access_token_seconds, cfg.refresh_token_seconds, cfg.code_seconds) <= 0:
            raise ConfigError("OAuth 2.0 lifetimes must be > 0 seconds")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {
            "access_token_seconds": self.access_token_seconds,
            "refresh_token_seconds": self.refresh_token_seconds,
            "code_seconds": self.code_seconds,
        }


@dataclass
class PatConfig:
    """A personal access token that exists from the start (``token`` fixed, e.g. for a demo)."""

    user: str
    token: str | None = None
    name: str = ""
    expiration_days: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PatConfig:
        user = data.get("user")
        if not user:
            raise ConfigError("a personal access token needs user")
        days = _get(data, "expiration_days", "expirationDays")
        if days is not None and int(days) < 1:
            raise ConfigError("expiration_days must be >= 1")
        token = data.get("token")
        return cls(
            user=str(user),
            token=str(token) if token else None,
            name=str(data.get("name") or "token"),
            expiration_days=int(days) if days is not None else None,
        )


def default_account_id(name: str) -> str:
    """A stable Atlassian-style account id (24 hex digits) for a user name: the same person on every site."""
    return "5b10" + hashlib.sha256(f"jirasim:{name}".encode()).hexdigest()[:20]


@dataclass
class UserConfig:
    name: str
    display_name: str = ""
    timezone: str = "UTC"
    key: str = ""
    email: str = ""
    active: bool = True
    account_id: str = ""  # Cloud: the Atlassian account id (default derived from the name)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserConfig:
        name = data.get("name")
        if not name:
            raise ConfigError("user needs name")
        return cls(
            name=str(name),
            display_name=str(_get(data, "display_name", "displayName", default=name)),
            timezone=check_timezone(str(_get(data, "timezone", "timeZone", default="UTC"))),
            key=str(data.get("key") or ""),
            email=str(_get(data, "email", "emailAddress", default="") or ""),
            active=bool(data.get("active", True)),
            account_id=str(_get(data, "account_id", "accountId", default="") or ""),
        )


@dataclass
class IssueConfig:
    key: str
    id: int | None = None
    summary: str = ""
    parent: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IssueConfig:
        key = data.get("key")
        if not key or "-" not in str(key):
            raise ConfigError(f"issue needs a key like PROJ-1, got {key!r}")
        raw_id = data.get("id")
        return cls(
            key=str(key),
            id=int(raw_id) if raw_id is not None else None,
            summary=str(data.get("summary", "")),
            parent=str(data["parent"]) if data.get("parent") else None,
        )


@dataclass
class RateLimitConfig:
    rate: float = 10.0
    burst: int = 10
    enabled: bool = True
    retry_after: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RateLimitConfig:
        data = data or {}
        cfg = cls(
            rate=float(data.get("rate", 10.0)),
            burst=int(data.get("burst", 10)),
            enabled=bool(data.get("enabled", True)),
            retry_after=bool(_get(data, "retry_after", "retryAfter", default=True)),
        )
        if cfg.rate <= 0 or cfg.burst < 1:
            raise ConfigError("rate_limit needs rate > 0 and burst >= 1")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "burst": self.burst,
            "enabled": self.enabled,
            "retry_after": self.retry_after,
        }


@dataclass
class WebhookConfig:
    url: str | None = None
    secret: str = ""
    duplicates: int = 0
    delay_ms: int = 0
    timeout_seconds: float = 2.0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> WebhookConfig:
        data = data or {}
        url = data.get("url")
        return cls(
            url=check_loopback_url(str(url)) if url else None,
            secret=str(data.get("secret", "")),
            duplicates=max(0, int(data.get("duplicates", 0))),
            delay_ms=max(0, int(_get(data, "delay_ms", "delayMs", default=0))),
            timeout_seconds=float(_get(data, "timeout_seconds", "timeoutSeconds", default=2.0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "secret": self.secret,
            "duplicates": self.duplicates,
            "delay_ms": self.delay_ms,
            "timeout_seconds": self.timeout_seconds,
        }


@dataclass
class CloudLimitsConfig:
    """A Cloud site's per-second burst limit (per endpoint and method) and per-issue write limits.

    Atlassian publishes the per-issue limits (20 writes per 2 s and 100 per 30 s); the burst limit is not
    published, so the default is generous and tests set it low.
    """

    burst_rate: float = 100.0
    burst_capacity: int = 100
    per_issue_writes: tuple[tuple[int, float], ...] = ((20, 2.0), (100, 30.0))
    tenant_points_per_hour: int | None = None  # this site's own pool (jira-quota-tenant-based), per app
    enabled: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> CloudLimitsConfig:
        data = data or {}
        raw_issue = data.get("per_issue_writes", [[20, 2.0], [100, 30.0]])
        tenant = data.get("tenant_points_per_hour")
        cfg = cls(
            burst_rate=float(data.get("burst_rate", 100.0)),
            burst_capacity=int(data.get("burst_capacity", 100)),
            per_issue_writes=tuple((int(n), float(w)) for n, w in raw_issue),
            tenant_points_per_hour=int(tenant) if tenant is not None else None,
            enabled=bool(data.get("enabled", True)),
        )
        if cfg.burst_rate <= 0 or cfg.burst_capacity < 1:
            raise ConfigError("cloud_limits needs burst_rate > 0 and burst_capacity >= 1")
        if any(n < 1 or w <= 0 for n, w in cfg.per_issue_writes):
            raise ConfigError("per_issue_writes are [count >= 1, seconds > 0] pairs")
        if cfg.tenant_points_per_hour is not None and cfg.tenant_points_per_hour < 1:
            raise ConfigError("tenant_points_per_hour must be >= 1 (or null: no tenant pool)")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {
            "burst_rate": self.burst_rate,
            "burst_capacity": self.burst_capacity,
            "per_issue_writes": [list(p) for p in self.per_issue_writes],
            "tenant_points_per_hour": self.tenant_points_per_hour,
            "enabled": self.enabled,
        }


@dataclass
class AtlassianAppConfig:
    """A distributable OAuth 2.0 (3LO) app as registered in Atlassian's developer console."""

    client_id: str
    client_secret: str
    name: str = ""
    callback_urls: tuple[str, ...] = ()  # empty: any redirect_uri is accepted
    points_per_hour: int | None = 65000  # the app's global pool across all sites (jira-quota-global-based)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AtlassianAppConfig:
        client_id = str(_get(data, "client_id", "clientId", default="") or "")
        secret = str(_get(data, "client_secret", "clientSecret", default="") or "")
        if not client_id or not secret:
            raise ConfigError("an Atlassian app needs client_id and client_secret")
        urls = _get(data, "callback_urls", "callbackUrls", default=[]) or []
        for url in urls:
            parts = urlsplit(str(url))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"callback URL {url!r} of app {client_id!r} is not an absolute URL")
        points = data.get("points_per_hour", 65000)
        if points is not None and int(points) < 1:
            raise ConfigError("points_per_hour must be >= 1 (or null: no global pool)")
        return cls(
            client_id=client_id,
            client_secret=secret,
            name=str(data.get("name") or client_id),
            callback_urls=tuple(str(u) for u in urls),
            points_per_hour=int(points) if points is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "callback_urls": list(self.callback_urls),
            "points_per_hour": self.points_per_hour,
        }


def _path_prefix(value: Any, default: str) -> str:
    path = "/" + str(value or default).strip("/")
    if path == "/" or any(not seg for seg in path[1:].split("/")):
        raise ConfigError(f"invalid path prefix {value!r}")
    return path


@dataclass
class AtlassianConfig:
    """The simulated Atlassian platform around Cloud sites: authorization server and API gateway."""

    auth_path: str = "/auth.atlassian.com"  # ATLASSIAN_AUTH_URL = http://<sim><auth_path>
    api_path: str = "/api.atlassian.com"  # ATLASSIAN_API_URL = http://<sim><api_path>
    apps: list[AtlassianAppConfig] = field(default_factory=list)
    authorize_mode: str = "approve"
    approve_as: str | None = None  # account (user name) who approves; default: the first Cloud user
    approve_sites: tuple[str, ...] | None = None  # site names the consent covers; default: all of the account's
    access_token_seconds: float = 3600.0
    code_seconds: float = 600.0
    refresh_reuse_interval_seconds: float = 600.0  # Atlassian's "leeway interval" of 10 minutes
    refresh_inactivity_seconds: float = 90 * DAY
    refresh_absolute_seconds: float = 365 * DAY
    quota_window_seconds: float = 3600.0  # the points quota's window (clock hours); tests shorten it

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AtlassianConfig:
        data = data or {}
        mode = str(data.get("authorize_mode", "approve"))
        if mode not in AUTHORIZE_MODES:
            raise ConfigError(f"authorize_mode must be one of {AUTHORIZE_MODES}")
        sites = data.get("approve_sites")
        cfg = cls(
            auth_path=_path_prefix(data.get("auth_path"), "/auth.atlassian.com"),
            api_path=_path_prefix(data.get("api_path"), "/api.atlassian.com"),
            apps=[AtlassianAppConfig.from_dict(a) for a in data.get("apps", [])],
            authorize_mode=mode,
            approve_as=data.get("approve_as"),
            approve_sites=tuple(str(s) for s in sites) if sites is not None else None,
            access_token_seconds=float(data.get("access_token_seconds", 3600.0)),
            code_seconds=float(data.get("code_seconds", 600.0)),
            refresh_reuse_interval_seconds=float(data.get("refresh_reuse_interval_seconds", 600.0)),
            refresh_inactivity_seconds=float(data.get("refresh_inactivity_seconds", 90 * DAY)),
            refresh_absolute_seconds=float(data.get("refresh_absolute_seconds", 365 * DAY)),
            quota_window_seconds=float(data.get("quota_window_seconds", 3600.0)),
        )
        cfg.check()
        if cfg.auth_path.split("/")[1] == cfg.api_path.split("/")[1]:
            raise ConfigError("auth_path and api_path must start with different segments")
        ids = [a.client_id for a in cfg.apps]
        if len(set(ids)) != len(ids):
            raise ConfigError("Atlassian app client ids must be unique")
        return cfg

    def check(self) -> None:
        lifetimes = (
            self.access_token_seconds,
            self.code_seconds,
            self.refresh_inactivity_seconds,
            self.refresh_absolute_seconds,
            self.quota_window_seconds,
        )
        if min(lifetimes) <= 0 or self.refresh_reuse_interval_seconds < 0:
            raise ConfigError("Atlassian lifetimes and windows must be > 0 seconds")

    @property
    def reserved_names(self) -> set[str]:
        """First path segments an instance may not be named after (they route to the platform)."""
        return {self.auth_path.split("/")[1], self.api_path.split("/")[1]}

    def settings(self) -> dict[str, Any]:
        return {
            "auth_path": self.auth_path,
            "api_path": self.api_path,
            "authorize_mode": self.authorize_mode,
            "approve_as": self.approve_as,
            "approve_sites": list(self.approve_sites) if self.approve_sites is not None else None,
            "access_token_seconds": self.access_token_seconds,
            "code_seconds": self.code_seconds,
            "refresh_reuse_interval_seconds": self.refresh_reuse_interval_seconds,
            "refresh_inactivity_seconds": self.refresh_inactivity_seconds,
            "refresh_absolute_seconds": self.refresh_absolute_seconds,
            "quota_window_seconds": self.quota_window_seconds,
        }


@dataclass
class InstanceConfig:
    name: str
    deployment: str = "datacenter"  # or "cloud": a Jira Cloud site behind the simulated Atlassian gateway
    cloud_id: str = ""  # Cloud: the site's id in accessible-resources and gateway URLs
    site_url: str = ""  # Cloud: https://<name>.atlassian.net unless given (never contacted)
    cloud_limits: CloudLimitsConfig = field(default_factory=CloudLimitsConfig)
    display_timezone: str = "UTC"
    feed_delay_seconds: float = 60.0
    authorize_mode: str = "approve"
    approve_as: str | None = None
    consumers: list[ConsumerConfig] = field(default_factory=list)
    users: list[UserConfig] = field(default_factory=list)
    issues: list[IssueConfig] = field(default_factory=list)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    faults: dict[str, Any] = field(default_factory=dict)
    oauth2_clients: list[OAuth2ClientConfig] = field(default_factory=list)
    oauth2: OAuth2Settings = field(default_factory=OAuth2Settings)
    personal_access_tokens: list[PatConfig] = field(default_factory=list)
    timestamp_window_seconds: int = 300
    hours_per_day: int = 8
    days_per_week: int = 5

    @property
    def context_path(self) -> str:
        return "/" + self.name

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: Path | None = None) -> InstanceConfig:
        name = str(data.get("name") or "").strip("/")
        if not name or "/" in name or name in RESERVED_NAMES:
            raise ConfigError(f"invalid instance name {data.get('name')!r}")
        mode = str(_get(data, "authorize_mode", "authorizeMode", default="approve"))
        if mode not in AUTHORIZE_MODES:
            raise ConfigError(f"authorize_mode must be one of {AUTHORIZE_MODES}")
        deployment = str(data.get("deployment") or "datacenter")
        if deployment not in DEPLOYMENTS:
            raise ConfigError(f"deployment must be one of {DEPLOYMENTS}")
        site_url = str(_get(data, "site_url", "siteUrl", default="") or f"https://{name}.atlassian.net").rstrip("/")
        cloud_id = str(_get(data, "cloud_id", "cloudId", default="") or uuid.uuid5(uuid.NAMESPACE_URL, site_url))
        if deployment == "cloud" and (data.get("consumers") or data.get("oauth2_clients")):
            raise ConfigError(f"Cloud site {name!r} takes no OAuth 1.0a consumers or OAuth 2.0 clients")
        webhook_data = data.get("webhook")
        if webhook_data is None and (data.get("webhook_url") or data.get("webhook_secret")):
            webhook_data = {"url": data.get("webhook_url"), "secret": data.get("webhook_secret", "")}
        cfg = cls(
            name=name,
            deployment=deployment,
            cloud_id=cloud_id,
            site_url=site_url,
            cloud_limits=CloudLimitsConfig.from_dict(_get(data, "cloud_limits", "cloudLimits")),
            display_timezone=check_timezone(
                str(_get(data, "display_timezone", "displayTimezone", "timezone", default="UTC"))
            ),
            feed_delay_seconds=float(_get(data, "feed_delay_seconds", "feedDelaySeconds", default=60.0)),
            authorize_mode=mode,
            approve_as=_get(data, "approve_as", "approveAs"),
            consumers=[ConsumerConfig.from_dict(c, base_dir) for c in data.get("consumers", [])],
            users=[UserConfig.from_dict(u) for u in data.get("users", [])],
            issues=[IssueConfig.from_dict(i) for i in data.get("issues", [])],
            rate_limit=RateLimitConfig.from_dict(_get(data, "rate_limit", "rateLimit")),
            webhook=WebhookConfig.from_dict(webhook_data),
            faults=dict(data.get("faults") or {}),
            oauth2_clients=[OAuth2ClientConfig.from_dict(c) for c in _get(data, "oauth2_clients", default=[])],
            oauth2=OAuth2Settings.from_dict(data.get("oauth2")),
            personal_access_tokens=[PatConfig.from_dict(p) for p in _get(data, "personal_access_tokens", default=[])],
            timestamp_window_seconds=int(_get(data, "timestamp_window_seconds", "timestampWindowSeconds", default=300)),
            hours_per_day=int(_get(data, "hours_per_day", "hoursPerDay", default=8)),
            days_per_week=int(_get(data, "days_per_week", "daysPerWeek", default=5)),
        )
        users = {u.name for u in cfg.users}
        if cfg.approve_as is not None and cfg.approve_as not in users:
            raise ConfigError(f"approve_as user {cfg.approve_as!r} is not a configured user")
        for pat in cfg.personal_access_tokens:
            if pat.user not in users:
                raise ConfigError(f"personal access token of unknown user {pat.user!r}")
        keys = {i.key for i in cfg.issues}
        for issue in cfg.issues:
            if issue.parent is not None and issue.parent not in keys:
                raise ConfigError(f"parent {issue.parent!r} of {issue.key} is not configured")
        return cfg


@dataclass
class SimConfig:
    instances: list[InstanceConfig] = field(default_factory=list)
    atlassian: AtlassianConfig = field(default_factory=AtlassianConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: Path | None = None) -> SimConfig:
        instances = [InstanceConfig.from_dict(i, base_dir) for i in data.get("instances", [])]
        atlassian = AtlassianConfig.from_dict(data.get("atlassian"))
        names = [i.name for i in instances]
        if len(set(names)) != len(names):
            raise ConfigError("instance names must be unique")
        cloud_ids = [i.cloud_id for i in instances if i.deployment == "cloud"]
        if len(set(cloud_ids)) != len(cloud_ids):
            raise ConfigError("Cloud sites need distinct cloud_id and site_url")
        for name in names:
            if name in atlassian.reserved_names:
                raise ConfigError(f"instance name {name!r} is the path of the Atlassian platform")
        return cls(instances=instances, atlassian=atlassian)

    @classmethod
    def load(cls, path: str | Path) -> SimConfig:
        p = Path(path)
        return cls.from_dict(json.loads(p.read_text()), base_dir=p.parent)

    @classmethod
    def coerce(cls, config: SimConfig | dict[str, Any] | str | Path | None) -> SimConfig:
        if config is None:
            return cls()
        if isinstance(config, SimConfig):
            return config
        if isinstance(config, dict):
            return cls.from_dict(config)
        return cls.load(config)
