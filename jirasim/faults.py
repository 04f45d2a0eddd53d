"""Fault injection settings and decisions (per instance)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from .cloud_limits import REASONS

PRE_KINDS = ("error", "drop", "hang", "latency", "rate_limit", "hold")
POST_KINDS = ("fail_after_write",)
AFTER_WRITE_MODES = ("502", "drop", "timeout")
DEFAULT_ERROR_STATUSES = (500, 502, 503)


class FaultConfigError(ValueError):
    pass


@dataclass
class FaultSettings:
    """Probabilistic faults applied to REST/OAuth requests of an instance."""

    latency_ms: int = 0
    jitter_ms: int = 0
    error_rate: float = 0.0
    error_statuses: list[int] = field(default_factory=lambda: list(DEFAULT_ERROR_STATUSES))
    fail_after_write_rate: float = 0.0
    fail_after_write_mode: str = "502"  # 502 | drop | timeout | random
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    writes_only: bool = False
    path_contains: str | None = None
    seed: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FaultSettings:
        data = dict(data or {})
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise FaultConfigError(f"unknown fault settings: {sorted(unknown)}")
        settings = cls(**data)
        settings.validate()
        return settings

    def validate(self) -> None:
        for name in ("error_rate", "fail_after_write_rate", "hang_rate"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise FaultConfigError(f"{name} must be within [0, 1]")
        if self.latency_ms < 0 or self.jitter_ms < 0 or self.hang_seconds < 0:
            raise FaultConfigError("latency, jitter and hang_seconds must be >= 0")
        if not self.error_statuses or any(not 500 <= s <= 599 for s in self.error_statuses):
            raise FaultConfigError("error_statuses must be 5xx codes")
        if self.fail_after_write_mode not in (*AFTER_WRITE_MODES, "random"):
            raise FaultConfigError(f"fail_after_write_mode must be one of {AFTER_WRITE_MODES}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FaultRule:
    """A scripted one-shot fault: applies to the next ``count`` matching requests."""

    kind: str  # error | drop | hang | latency | rate_limit | hold | fail_after_write
    count: int = 1
    status: int = 503
    mode: str = "502"  # for fail_after_write: 502 | drop | timeout
    seconds: float = 30.0  # for hang / timeout; for hold: the longest it holds (a release ends it sooner)
    latency_ms: int = 0  # for latency
    retry_after: int = 1  # for rate_limit: the 429's Retry-After
    reason: str | None = None  # for rate_limit: a Cloud RateLimit-Reason
    method: str | None = None
    path_contains: str | None = None
    writes_only: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise FaultConfigError(f"unknown fault rule fields: {sorted(unknown)}")
        rule = cls(**data)
        if rule.kind not in (*PRE_KINDS, *POST_KINDS):
            raise FaultConfigError(f"kind must be one of {PRE_KINDS + POST_KINDS}")
        if rule.kind == "fail_after_write" and rule.mode not in AFTER_WRITE_MODES:
            raise FaultConfigError(f"mode must be one of {AFTER_WRITE_MODES}")
        if rule.count < 1:
            raise FaultConfigError("count must be >= 1")
        if rule.kind == "rate_limit" and (rule.retry_after < 1 or rule.reason not in (None, *REASONS)):
            # a rule without a reason answers like Data Center
            raise FaultConfigError(f"rate_limit needs retry_after >= 1 and a reason among {REASONS}")
        if rule.method:
            rule.method = rule.method.upper()
        return rule

    def matches(self, method: str, path: str, is_write: bool) -> bool:
        if self.method and self.method != method:
            return False
        if self.path_contains and self.path_contains not in path:
            return False
        return not (self.writes_only and not is_write)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PreAction:
    """What to do before the handler runs."""

    latency_s: float = 0.0
    error_status: int | None = None
    drop: bool = False
    hang_s: float | None = None
    hold_s: float | None = None  # hold the request until released (or this long), then serve it
    rate_limit: FaultRule | None = None  # answer 429 as this rule says
    kind: str | None = None  # name of the injected fault (for counters/logs)


@dataclass(frozen=True)
class PostAction:
    """What to do after a write was committed."""

    mode: str  # 502 | drop | timeout
    seconds: float = 0.0


class FaultInjector:
    def __init__(self, settings: FaultSettings | None = None) -> None:
        self.settings = settings or FaultSettings()
        self.rules: list[FaultRule] = []
        self._rng = random.Random(self.settings.seed)
        self._released = asyncio.Event()  # set (and replaced) when the requests held now are released

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._rng = random.Random(settings.seed)

    def add_rule(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def clear(self) -> None:
        self.configure(FaultSettings())
        self.rules.clear()
        self.release()

    @property
    def released(self) -> asyncio.Event:
        """Set when the requests held now (`hold` rules) are released."""
        return self._released

    def release(self) -> None:
        """Let every request a `hold` rule holds go on now; later ones are held again."""
        self._released.set()
        self._released = asyncio.Event()

    def _take_rule(self, kinds: tuple[str, ...], method: str, path: str, is_write: bool) -> FaultRule | None:
        for rule in self.rules:
            if rule.kind in kinds and rule.matches(method, path, is_write):
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
                return rule
        return None

    def _settings_apply(self, path: str, is_write: bool) -> bool:
        s = self.settings
        if s.writes_only and not is_write:
            return False
        return not (s.path_contains and s.path_contains not in path)

    def _latency(self) -> float:
        s = self.settings
        if s.latency_ms <= 0 and s.jitter_ms <= 0:
            return 0.0
        jitter = self._rng.uniform(-s.jitter_ms, s.jitter_ms) if s.jitter_ms else 0.0
        return max(0.0, (s.latency_ms + jitter) / 1000.0)

    def before(self, method: str, path: str, is_write: bool) -> PreAction:
        latency = self._latency()
        rule = self._take_rule(PRE_KINDS, method, path, is_write)
        if rule is not None:
            if rule.kind == "latency":
                return PreAction(latency_s=latency + rule.latency_ms / 1000.0, kind="latency")
            if rule.kind == "error":
                return PreAction(latency_s=latency, error_status=rule.status, kind="error")
            if rule.kind == "drop":
                return PreAction(latency_s=latency, drop=True, kind="drop")
            if rule.kind == "rate_limit":
                return PreAction(latency_s=latency, rate_limit=rule, kind="rate_limit")
            if rule.kind == "hold":
                return PreAction(latency_s=latency, hold_s=rule.seconds, kind="hold")
            return PreAction(latency_s=latency, hang_s=rule.seconds, kind="hang")
        s = self.settings
        if self._settings_apply(path, is_write):
            if s.hang_rate and self._rng.random() < s.hang_rate:
                return PreAction(latency_s=latency, hang_s=s.hang_seconds, kind="hang")
            if s.error_rate and self._rng.random() < s.error_rate:
                status = self._rng.choice(s.error_statuses)
                return PreAction(latency_s=latency, error_status=status, kind="error")
        return PreAction(latency_s=latency, kind="latency" if latency else None)

    def after_write(self, method: str, path: str) -> PostAction | None:
        rule = self._take_rule(POST_KINDS, method, path, True)
        if rule is not None:
            return PostAction(mode=rule.mode, seconds=rule.seconds)
        s = self.settings
        if (
            s.fail_after_write_rate
            and self._settings_apply(path, True)
            and self._rng.random() < s.fail_after_write_rate
        ):
            mode = s.fail_after_write_mode
            if mode == "random":
                mode = self._rng.choice(AFTER_WRITE_MODES)
            return PostAction(mode=mode, seconds=s.hang_seconds)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "rules": [r.to_dict() for r in self.rules]}
