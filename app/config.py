"""Settings (CONTRACT section 1), read from the environment and `.env`."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The one stated default of RATE_LIMIT_ARRIVAL_MARGIN_SECONDS (README and docs/coordination.md say the same):
# 25 ms covers the variation in transit between a request being written and its arrival at JIRA (a request that
# leaves late is counted from when it was written); utilisation under backlog is at most 1 / 1.025 ≈ 97.6 %.
DEFAULT_ARRIVAL_MARGIN_SECONDS = 0.025
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class EncryptionKey:
    kid: str
    key: bytes

    def __repr__(self) -> str:  # never print key material
        return f"EncryptionKey(kid={self.kid!r}, key=<redacted>)"


def parse_encryption_keys(raw: str) -> tuple[EncryptionKey, ...]:
    """Parse `kid:base64-32-bytes[,kid:...]`, standard or URL-safe base64; the first key encrypts."""
    keys: list[EncryptionKey] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        kid, sep, b64 = part.partition(":")
        if not sep or not kid.strip():
            raise ValueError("each key must look like kid:base64-32-bytes")
        b64 = b64.strip()
        try:
            padded = b64 + "=" * (-len(b64) % 4)
            key = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"key {kid.strip()!r} is not valid base64") from exc
        if len(key) != 32:
            raise ValueError(f"key {kid.strip()!r} must decode to 32 bytes (AES-256), got {len(key)}")
        keys.append(EncryptionKey(kid.strip(), key))
    if not keys:
        raise ValueError("at least one key is required")
    if len({k.kid for k in keys}) != len(keys):
        raise ValueError("key ids must be unique")
    return tuple(keys)


def parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    """`10.0.0.0/8, 127.0.0.1/32, ::1/128` (a bare address means just that address)."""
    networks: list[IPNetwork] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not a network like 10.0.0.0/8 or 127.0.0.1/32") from None
    return tuple(networks)


def parse_sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    """`sentinel-1:26379, 10.0.0.7:26379, [::1]:26379` (host:port pairs; an IPv6 address in brackets)."""
    sentinels: list[tuple[str, int]] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part!r} is not a sentinel address like sentinel-1:26379")
        sentinels.append((host, int(port)))
    return tuple(sentinels)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str = Field(description="postgresql+asyncpg://user:pw@host:port/db")
    redis_url: str = Field(description="redis://host:port/db")
    # extension: Redis behind Sentinel. The processes ask these sentinels for the current primary of
    # `redis_sentinel_master` (and again after a failover); REDIS_URL then gives only the database number, user
    # name, password and TLS (`rediss://`) of the data connections, its host and port are not used
    redis_sentinels: Annotated[tuple[tuple[str, int], ...], NoDecode] = ()
    redis_sentinel_master: str = Field("mymaster", min_length=1)
    redis_sentinel_password: str = Field("", repr=False)
    encryption_keys: Annotated[tuple[EncryptionKey, ...], NoDecode] = Field(repr=False)
    public_base_url: str = "http://127.0.0.1:8000"
    sync_max_attempts: int = Field(5, ge=1, le=100)
    sync_backoff_base_seconds: float = Field(1.0, ge=0)
    # extension: the doubling stops here (only matters when SYNC_MAX_ATTEMPTS is raised well above 5)
    sync_backoff_max_seconds: float = Field(300.0, gt=0)
    conflict_window_seconds: int = Field(300, ge=0)
    reconcile_interval_seconds: int = Field(60, ge=1)
    sweep_interval_seconds: int = Field(30, ge=1)
    jira_timeout_seconds: float = Field(30, gt=0)
    circuit_failure_threshold: int = Field(5, ge=1)
    circuit_reset_seconds: float = Field(30, gt=0)
    # extensions beyond the contract
    log_format: str = Field("auto", pattern="^(auto|json|text)$")
    log_level: str = "INFO"
    metrics_port: int | None = None
    # one poll of one instance (both feeds and the worklogs they name) is abandoned after this long (CONTRACT 11)
    reconcile_poll_deadline_seconds: float = Field(120, gt=0)
    # the largest expected variation between a request leaving and its arrival at JIRA; the limiter keeps
    # `rate` requests per (1 s + margin), so arrivals hold `rate` per second at JIRA
    rate_limit_arrival_margin_seconds: float = Field(DEFAULT_ARRIVAL_MARGIN_SECONDS, ge=0, le=0.5)
    # CONTRACT section 11: limits, egress and hostile input
    api_max_body_bytes: int = Field(1_048_576, ge=1024)
    api_max_batch_body_bytes: int = Field(8_388_608, ge=1024)
    tenant_api_rate_per_second: float = Field(100, ge=0)
    jira_allowed_networks: Annotated[tuple[IPNetwork, ...], NoDecode] = ()
    # extension: `hosts` resolves JIRA host names from /etc/hosts only and never asks DNS (the test suite uses it:
    # its traffic stays on loopback, DNS queries included)
    jira_name_resolution: Literal["system", "hosts"] = "system"
    jira_max_response_bytes: int = Field(8_388_608, ge=1024)
    jira_max_connections_per_instance: int = Field(10, ge=1, le=1000)
    metrics_token: str = Field("", repr=False)
    # CONTRACT section 12: Jira Cloud through the service's one OAuth 2.0 (3LO) app
    atlassian_client_id: str = ""
    atlassian_client_secret: str = Field("", repr=False)
    atlassian_auth_url: str = "https://auth.atlassian.com"
    atlassian_api_url: str = "https://api.atlassian.com"
    atlassian_points_per_hour: int = Field(65_000, ge=1)
    # extension for the simulator and tests: the quota's window (Atlassian's is the clock hour)
    atlassian_quota_window_seconds: float = Field(3600.0, ge=1.0, le=3600.0)

    @property
    def push_lease_seconds(self) -> float:
        """How long an instance's push lease lasts unrenewed: a request sent under it (bounded by the JIRA timeout)
        is over before the lease can pass to another process; a killed worker's instances move on after this."""
        return self.jira_timeout_seconds + 10

    @property
    def push_claim_seconds(self) -> float:
        """How long an entry a pusher took stays its own without its answer being recorded: room for the few
        requests of one push step (each bounded by the JIRA timeout). A killed worker's entries move on after it."""
        return self.jira_timeout_seconds * 3 + 10

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, v: str) -> str:
        if not v.startswith(("postgresql+asyncpg://", "postgresql://", "postgres://")):
            raise ValueError("must be postgresql+asyncpg://user:pw@host:port/db")
        if v.startswith("postgres://"):
            v = "postgresql://" + v[len("postgres://"):]
        if v.startswith("postgresql://"):
            v = "postgresql+asyncpg://" + v[len("postgresql://"):]
        return v

    @field_validator("redis_url")
    @classmethod
    def _check_redis(cls, v: str) -> str:
        if not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be redis://host:port/db")
        return v

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _parse_sentinels(cls, v: object) -> object:
        if isinstance(v, str):
            return parse_sentinels(v)
        return v

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _parse_keys(cls, v: object) -> object:
        if isinstance(v, str):
            return parse_encryption_keys(v)
        return v

    @field_validator("jira_allowed_networks", mode="before")
    @classmethod
    def _parse_networks(cls, v: object) -> object:
        if isinstance(v, str):
            return parse_networks(v)
        return v

    @property
    def atlassian_app_configured(self) -> bool:
        """Whether Jira Cloud sites can be connected (the 3LO app's id and secret are both set)."""
        return bool(self.atlassian_client_id.strip() and self.atlassian_client_secret.strip())

    @field_validator("public_base_url", "atlassian_auth_url", "atlassian_api_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return v.rstrip("/")


def describe_error(exc: ValidationError) -> str:
    """One line naming the first bad variable, e.g. `ENCRYPTION_KEYS: field required`."""
    err = exc.errors()[0]
    name = str(err["loc"][0]).upper() if err["loc"] else "settings"
    msg = "is required but not set" if err["type"] == "missing" else err["msg"]
    return f"configuration error: {name} {msg}"


@lru_cache
def get_settings() -> Settings:
    """The process settings; a bad or missing required setting exits with one line naming it."""
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None
