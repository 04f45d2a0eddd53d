"""Token-bucket rate limiting in the style of JIRA Data Center."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .config import RateLimitConfig

_EPSILON = 1e-9  # float noise from clock arithmetic must not cost a token


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after: int  # seconds until a token is available (0 if allowed)
    limit: int
    rate: float


class TokenBucket:
    """``burst`` tokens at most, refilled continuously at ``rate`` tokens per second."""

    def __init__(self, config: RateLimitConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.config = config
        self._tokens = float(config.burst)
        self._last = clock()

    def reconfigure(self, config: RateLimitConfig) -> None:
        self._refill()
        self.config = config
        self._tokens = min(self._tokens, float(config.burst))

    def reset(self) -> None:
        self._tokens = float(self.config.burst)
        self._last = self._clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self.config.burst), self._tokens + elapsed * self.config.rate)

    def take(self) -> Decision:
        cfg = self.config
        if not cfg.enabled:
            return Decision(True, cfg.burst, 0, cfg.burst, cfg.rate)
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens = max(0.0, self._tokens - 1.0)
            return Decision(True, int(self._tokens + _EPSILON), 0, cfg.burst, cfg.rate)
        wait = (1.0 - self._tokens) / cfg.rate
        return Decision(False, 0, max(1, math.ceil(wait)), cfg.burst, cfg.rate)

    def peek_remaining(self) -> int:
        self._refill()
        return int(self._tokens)


def rate_limit_headers(decision: Decision, include_retry_after: bool) -> dict[str, str]:
    headers = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Interval-Seconds": "1",
        "X-RateLimit-FillRate": _format_rate(decision.rate),
    }
    if not decision.allowed and include_retry_after:
        headers["Retry-After"] = str(decision.retry_after)
    return headers


def _format_rate(rate: float) -> str:
    return str(int(rate)) if float(rate).is_integer() else f"{rate:g}"
