"""Configuration model of the simulator (parsed from JSON / Python dicts)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

AUTHORIZE_MODES = ("approve", "deny", "manual")
RESERVED_NAMES = ("_sim",)


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


@dataclass
class UserConfig:
    name: str
    display_name: str = ""
    timezone: str = "UTC"
    key: str = ""
    email: str = ""
    active: bool = True

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
class InstanceConfig:
    name: str
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
        webhook_data = data.get("webhook")
        if webhook_data is None and (data.get("webhook_url") or data.get("webhook_secret")):
            webhook_data = {"url": data.get("webhook_url"), "secret": data.get("webhook_secret", "")}
        cfg = cls(
            name=name,
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
            timestamp_window_seconds=int(_get(data, "timestamp_window_seconds", "timestampWindowSeconds", default=300)),
            hours_per_day=int(_get(data, "hours_per_day", "hoursPerDay", default=8)),
            days_per_week=int(_get(data, "days_per_week", "daysPerWeek", default=5)),
        )
        users = {u.name for u in cfg.users}
        if cfg.approve_as is not None and cfg.approve_as not in users:
            raise ConfigError(f"approve_as user {cfg.approve_as!r} is not a configured user")
        keys = {i.key for i in cfg.issues}
        for issue in cfg.issues:
            if issue.parent is not None and issue.parent not in keys:
                raise ConfigError(f"parent {issue.parent!r} of {issue.key} is not configured")
        return cfg


@dataclass
class SimConfig:
    instances: list[InstanceConfig] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: Path | None = None) -> SimConfig:
        instances = [InstanceConfig.from_dict(i, base_dir) for i in data.get("instances", [])]
        names = [i.name for i in instances]
        if len(set(names)) != len(names):
            raise ConfigError("instance names must be unique")
        return cls(instances=instances)

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
