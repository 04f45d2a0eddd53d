"""A circuit breaker per JIRA instance, shared by every process through Redis (CONTRACT 10.8).

closed --(`failure_threshold` consecutive transient failures)--> open --(`reset_seconds`)--> half-open
half-open: exactly one trial request at a time, holding a permit (SET NX PX, so a crashed holder's permit
expires after `trial_ttl_seconds`); its success closes the circuit, its failure opens it again.

Every request to JIRA passes the circuit inside the request gate's one decision (`app.jira.ratelimit`, the same
`circuit_allow.lua`), and the gate reports each answer here: `record_success` when JIRA answered at all sensibly
(2xx-4xx: it is up), `record_failure` for a timeout, connection error or 5xx, `release_permit` when a trial permit
went unused. `allow` is the same decision on its own. Waiting for an open circuit is not an attempt (that is the
caller's bookkeeping). All times are Redis' clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from app import redis_keys
from app.config import Settings
from app.jira.scripts import as_text, register
from app.metrics import CIRCUIT_OPEN

__all__ = ["CircuitBreaker", "CircuitState", "Decision"]

CircuitState = Literal["closed", "open", "half_open"]

_US = 1_000_000
_STATE_TTL_MS = 24 * 3600 * 1000

@dataclass(frozen=True)
class Decision:
    """Whether a request may go now; if not, `retry_in` seconds is when asking again makes sense.

    `trial` marks the single half-open probe; its `permit` must end with `record_success`,
    `record_failure` or `release_trial`.
    """

    allowed: bool
    retry_in: float
    trial: bool
    permit: str | None = None
    state: CircuitState = "closed"



class CircuitBreaker:
    """Per-instance circuit state in Redis, shared by all API and worker processes."""

    def __init__(
        self,
        redis: Redis,
        *,
        failure_threshold: int = 5,
        reset_seconds: float = 30.0,
        trial_ttl_seconds: float = 40.0,
        half_open_retry_seconds: float = 1.0,
    ) -> None:
        self._redis = redis
        self._threshold = failure_threshold
        self._reset_us = int(reset_seconds * _US)
        self._trial_ttl_ms = max(1, int(trial_ttl_seconds * 1000))
        self._half_open_retry_us = int(half_open_retry_seconds * _US)
        self._allow = register(redis, "cb_allow")
        self._success = register(redis, "cb_success")
        self._failure = register(redis, "cb_failure")
        self._release = register(redis, "release_if_owner")
        self._state = register(redis, "cb_state")

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> CircuitBreaker:
        """Threshold and reset from CIRCUIT_*; a trial permit outlives one JIRA request timeout."""
        return cls(
            redis,
            failure_threshold=settings.circuit_failure_threshold,
            reset_seconds=settings.circuit_reset_seconds,
            trial_ttl_seconds=settings.jira_timeout_seconds + 10,
        )

    # what the request gate passes to the same decision (app/jira/lua/circuit_allow.lua) in its own call
    @property
    def reset_us(self) -> int:
        return self._reset_us

    @property
    def trial_ttl_ms(self) -> int:
        return self._trial_ttl_ms

    @property
    def half_open_retry_us(self) -> int:
        return self._half_open_retry_us

    def keys(self, instance_id: uuid.UUID) -> tuple[str, str]:
        """(circuit hash, trial permit) for one instance."""
        return redis_keys.circuit(instance_id)

    async def allow(self, instance_id: uuid.UUID) -> Decision:
        """May a request go to this instance now? In half-open only the one permit holder may."""
        token = uuid.uuid4().hex
        allowed, retry_us, trial, state = await self._allow(
            keys=list(self.keys(instance_id)),
            args=[self._reset_us, self._trial_ttl_ms, token, self._half_open_retry_us],
        )
        st: CircuitState = as_text(state)  # type: ignore[assignment]
        self._publish(instance_id, st)
        return Decision(
            allowed=bool(int(allowed)), retry_in=int(retry_us) / _US, trial=bool(int(trial)),
            permit=token if int(trial) else None, state=st,
        )

    async def record_success(self, instance_id: uuid.UUID) -> None:
        """JIRA answered: close the circuit and reset the consecutive-failure count."""
        await self._success(keys=list(self.keys(instance_id)))
        self._publish(instance_id, "closed")

    async def record_failure(self, instance_id: uuid.UUID) -> CircuitState:
        """A transient failure (timeout, connection error, 5xx); returns the state after it."""
        after = as_text(await self._failure(
            keys=list(self.keys(instance_id)), args=[self._threshold, self._reset_us, _STATE_TTL_MS],
        ))
        state: CircuitState = "open" if after == "open" else "closed"
        self._publish(instance_id, state)
        return state

    async def release_trial(self, instance_id: uuid.UUID, decision: Decision) -> bool:
        """Give back a trial permit that was not used (e.g. the request never went out)."""
        if not decision.permit:
            return False
        return await self.release_permit(instance_id, decision.permit)

    async def release_permit(self, instance_id: uuid.UUID, permit: str) -> bool:
        """Give back trial permit `permit` (only if it is still the current one)."""
        return bool(await self._release(keys=[self.keys(instance_id)[1]], args=[permit]))

    async def describe(self, instance_id: uuid.UUID) -> tuple[CircuitState, int, float]:
        """(state: 'closed', 'open' or 'half_open' on Redis' clock, consecutive failures, seconds until
        half-open), for the dashboard and the metrics."""
        state, failures, until_us = await self._state(keys=[self.keys(instance_id)[0]], args=[self._reset_us])
        st: CircuitState = as_text(state)  # type: ignore[assignment]
        self._publish(instance_id, st)
        return st, int(failures), int(until_us) / _US

    @staticmethod
    def _publish(instance_id: uuid.UUID, state: CircuitState) -> None:
        CIRCUIT_OPEN.labels(instance=str(instance_id)).set(0 if state == "closed" else 1)
