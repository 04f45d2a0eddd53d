"""Bearer access tokens renewed with rotating refresh tokens, one renewal per connection at a time across every
process (CONTRACT 12 and 13).

Two processes renewing the same refresh token at once would each get a pair: on Data Center the first pair dies
with the second, on Jira Cloud the loser later presents a replaced token, which Atlassian takes for theft and
revokes the user's consent. So a renewal runs under a Redis lock per connection, and the lock holder:

1. re-reads the stored pair: another process may have renewed it meanwhile (then that pair is used);
2. marks that a renewal is under way (`TokenStore.mark_refresh`) before the refresh token leaves;
3. asks the token endpoint (through the JIRA client: egress-checked, rate limited, audited);
4. stores the new pair, and clears the mark, before anything uses it.

A renewal whose answer is lost (a dropped connection, a killed worker) leaves its mark. The next renewal presents the
same refresh token again: Atlassian answers the token it just replaced with a new pair for 10 minutes
(`RefreshPolicy.reuse_leeway`), and after that the token is never presented again (the user reconnects instead of
losing their consent). A renewal that failed without reaching JIRA clears its mark. While the old access token still
lives, a failed renewal does not stop requests: it is tried again on the next one.

The store (the database) and the token endpoint (Data Center's or Atlassian's) are protocols, so every kind of
refreshing credential shares this logic.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app import metrics
from app.clock import now_utc
from app.domain.auth import may_present_refresh_token, refresh_due
from app.jira.calls import OnCall
from app.jira.egress import EgressRefused
from app.jira.errors import AuthRejected, PermanentError, RateLimited, TransientError
from app.jira.locks import LockTimeout, held_lock

log = logging.getLogger(__name__)

# an answer without `expires_in` (RFC 6749 only recommends it): assume JIRA's default; a 401 renews earlier anyway
DEFAULT_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class TokenPair:
    """An access token, the refresh token that renews it, when the access token expires and when to renew it."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    refresh_due_at: datetime

    @classmethod
    def issued(cls, access_token: str, refresh_token: str | None, *, now: datetime,
               expires_in: float | None) -> TokenPair:
        """A pair issued `now` that lives `expires_in` seconds (JIRA's `DEFAULT_LIFETIME` when not said)."""
        lifetime = timedelta(seconds=expires_in) if expires_in and expires_in > 0 else DEFAULT_LIFETIME
        return cls(access_token, refresh_token, now + lifetime, refresh_due(now, lifetime))

    @classmethod
    def from_answer(cls, data: Mapping[str, Any], *, now: datetime) -> TokenPair:
        """Read a token endpoint's answer (RFC 6749 5.1); an answer without an access token is JIRA's fault."""
        access = data.get("access_token")
        if not isinstance(access, str) or not access:
            raise TransientError("JIRA's token answer carries no access_token", maybe_applied=True)
        refresh = data.get("refresh_token")
        expires_in = data.get("expires_in")
        try:
            lifetime = float(expires_in) if expires_in is not None else None
        except (TypeError, ValueError):
            lifetime = None
        return cls.issued(access, refresh if isinstance(refresh, str) and refresh else None, now=now,
                          expires_in=lifetime)

    @classmethod
    def from_content(cls, content: bytes, *, status: int, server: str, operation: str, now: datetime) -> TokenPair:
        """Read a token endpoint's 2xx answer body; one that is not a JSON object is `server`'s fault, and the grant
        (a code, a refresh token) may have been spent all the same."""
        try:
            data = json.loads(content)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise TransientError(f"{server} answered {operation} with a body that is not a token answer",
                                 maybe_applied=True, status=status)
        return cls.from_answer(data, now=now)


@dataclass(frozen=True)
class StoredGrant:
    """What the store holds for a connection: its pair, and since when a renewal's answer is missing (if one is)."""

    pair: TokenPair
    refresh_started_at: datetime | None = None


class TokenStore(Protocol):
    """Where a connection's pair lives (the database); every method commits on its own."""

    async def load(self) -> StoredGrant | None:
        """The stored pair, read afresh; None when the connection holds none any more (removed, disconnected)."""
        ...

    async def mark_refresh(self, at: datetime | None) -> None:
        """Record that a renewal was sent at `at` (None: none is outstanding any more)."""
        ...

    async def save(self, pair: TokenPair) -> bool:
        """Store a renewed pair in place of the loaded one and clear the mark; False when the stored pair changed
        meanwhile (a reconnect, a disconnect): the renewed pair must then not be used."""
        ...


class TokenEndpoint(Protocol):
    """How a refresh token becomes a new pair (Data Center's `/rest/oauth2/latest/token`, Atlassian's …)."""

    async def refresh(self, refresh_token: str, *, on_call: OnCall | None) -> TokenPair:
        """A new pair; `TokenRefused` when the server refuses the token, another `JiraError` when it failed."""
        ...


@dataclass(frozen=True)
class RefreshPolicy:
    """The lock of one connection's renewals, and how long a lost renewal's token may be presented again."""

    lock_key: str
    lock_seconds: float  # the lock's TTL, renewed while held: a killed holder frees it after this long
    wait_seconds: float  # how long to wait for another process's renewal before giving up (transient)
    reuse_leeway: timedelta | None = None  # None: a spent token is refused without consequences (Data Center)


class RefreshingBearer:
    """A `Credential`: `Bearer <access token>`, renewed ahead of expiry and after a 401, single-flight."""

    def __init__(
        self, pair: TokenPair, *, store: TokenStore, endpoint: TokenEndpoint, redis: Redis, policy: RefreshPolicy,
        kind: str = "oauth2", clock: Callable[[], datetime] = now_utc, instance: str = "",
    ) -> None:
        self._pair = pair
        self._store, self._endpoint, self._redis, self._policy = store, endpoint, redis, policy
        self.kind = kind
        self._clock = clock
        self._instance = instance  # the metrics' label

    def _count(self, outcome: str) -> None:
        metrics.TOKEN_REFRESHES.labels(self._instance, self.kind, outcome).inc()

    def __repr__(self) -> str:
        return f"RefreshingBearer(kind={self.kind!r}, expires_at={self._pair.expires_at.isoformat()})"

    async def prepare(self, on_call: OnCall | None) -> None:
        """Renew when the access token is due (a few minutes before it expires)."""
        if self._clock() >= self._pair.refresh_due_at:
            await self._renew(on_call, rejected=None)

    def authorization(self, method: str, url: str, body: bytes) -> str | None:
        """`Bearer <access token>`."""
        return f"Bearer {self._pair.access_token}"

    async def renew_after_rejection(self, on_call: OnCall | None) -> bool:
        """JIRA refused the access token (expired early, replaced by another process's renewal, revoked): take the
        stored pair if it is newer, else renew; `AuthRejected` when the grant is gone."""
        await self._renew(on_call, rejected=self._pair.access_token)
        return True

    async def _renew(self, on_call: OnCall | None, *, rejected: str | None) -> None:
        policy = self._policy
        try:
            async with held_lock(self._redis, policy.lock_key, policy.lock_seconds, max_wait=policy.wait_seconds):
                await self._renew_holding_the_lock(on_call, rejected=rejected)
        except LockTimeout:
            raise TransientError("another process is renewing this connection's JIRA token and did not finish in "
                                 "time", maybe_applied=False) from None
        except RedisError:
            raise TransientError("cannot coordinate the renewal of the JIRA token: Redis is unavailable",
                                 maybe_applied=False) from None

    async def _renew_holding_the_lock(self, on_call: OnCall | None, *, rejected: str | None) -> None:
        now = self._clock()
        stored = await self._store.load()
        if stored is None:
            raise AuthRejected("the connection holds no JIRA token any more; the user must connect again",
                               oauth_problem="token_missing")
        if stored.pair.access_token != rejected and now < stored.pair.refresh_due_at:
            self._pair = stored.pair  # renewed by another process meanwhile (or not due after all)
            return
        refresh_token = stored.pair.refresh_token
        if not refresh_token:
            raise AuthRejected("JIRA gave this connection no refresh token; the user must connect again",
                               oauth_problem="no_refresh_token")
        if not may_present_refresh_token(stored.refresh_started_at, now, self._policy.reuse_leeway):
            raise AuthRejected("the answer to an earlier renewal of this connection's token was lost too long ago "
                               "to ask again safely; the user must connect again", oauth_problem="renewal_lost")
        if stored.refresh_started_at is None:
            await self._store.mark_refresh(now)
        try:
            renewed = await self._endpoint.refresh(refresh_token, on_call=on_call)
        except (EgressRefused, RateLimited) as exc:
            self._count("failed")
            await self._store.mark_refresh(stored.refresh_started_at)  # nothing reached JIRA: the token is unspent
            self._keep_or_raise(exc, stored, now, rejected)
            return
        except TransientError as exc:
            self._count("failed")
            if not exc.maybe_applied:
                await self._store.mark_refresh(stored.refresh_started_at)
            self._keep_or_raise(exc, stored, now, rejected)
            return
        except PermanentError as exc:
            self._count("refused")
            # refused (invalid_grant: revoked, expired, replaced; invalid_client), or no provider where it should be
            raise AuthRejected(f"JIRA refused to renew the connection's token: {exc.message}; the user must connect "
                               "again", oauth_problem=getattr(exc, "error", None) or "renewal_refused") from None
        self._count("renewed")
        if not await self._store.save(renewed):
            again = await self._store.load()
            if again is None:
                raise AuthRejected("the connection was disconnected while its JIRA token was renewed",
                                   oauth_problem="token_missing")
            renewed = again.pair  # a reconnect stored a pair of its own meanwhile: that one counts
        self._pair = renewed

    def _keep_or_raise(self, exc: TransientError | EgressRefused | RateLimited, stored: StoredGrant, now: datetime,
                       rejected: str | None) -> None:
        """A renewal that failed for now: go on with the stored access token while it lives (a renewal ahead of
        expiry can wait for the next request), else the failure is the request's."""
        if rejected is None and now < stored.pair.expires_at:
            log.warning("renewing a JIRA access token failed (%s); using it until it expires", exc.message)
            self._pair = stored.pair
            return
        raise exc
