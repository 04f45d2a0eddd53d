"""User tokens (CONTRACT 14): mint, verify and revoke the short-lived tokens the TimeTracker frontend uses.

* **Signing secrets** are per tenant, sealed like every other secret (`user_token_keys`), made on the tenant's
  first mint. The newest version signs; `rotate` adds a version and keeps the previous one until the tokens it
  signed have expired (`MAX_TTL_SECONDS`), or drops it at once (every token of the tenant stops working).
  Each process keeps the secrets it opened for `cache_seconds`.
* **Revocation** is per user: a token carries its user's generation, `revoke` bumps the generation in PostgreSQL
  (the truth) and in Redis (what every API process reads on every request), so a revoked token is refused by
  every process at once. Redis forgetting the value costs one query that puts it back; Redis being down makes
  each check a query; a revocation that cannot reach Redis is refused (503) and changes nothing, since a process
  could otherwise keep trusting a Redis value that no longer holds.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app import redis_keys
from app.clock import now_utc
from app.db.repositories import tenants as repo
from app.db.repositories.entries import add_audit
from app.security.secrets import SecretBox, SecretDecryptionError, binding
from app.security.user_tokens import (
    KeyId,
    TokenRejected,
    UserTokenClaims,
    key_id_of,
    mint,
    new_signing_secret,
    verify,
)
from app.ttl_cache import TtlCache

log = logging.getLogger(__name__)

MIN_TTL_SECONDS, DEFAULT_TTL_SECONDS, MAX_TTL_SECONDS = 60, 900, 43_200
# the Redis copy of a generation outlives every token minted under it, so an unrevoked user's key is refreshed
# from PostgreSQL at most twice a day
_GENERATION_TTL_SECONDS = MAX_TTL_SECONDS + 3600
# a signing version replaced this long ago signs no live token (other processes may sign with it for a few
# seconds after it was replaced: their cache)
_SUPERSEDED_LONG_AGO = timedelta(seconds=MAX_TTL_SECONDS + 300)


class RevocationUnavailable(Exception):
    """Redis could not be told: the revocation was not made (and must not be committed)."""


@dataclass(frozen=True)
class MintedToken:
    token: str
    user: str
    expires_at: datetime


@dataclass(frozen=True)
class Rotation:
    version: int
    dropped: int


def _binding(row_id: uuid.UUID) -> bytes:
    return binding("user_token_keys", "secret", row_id)


class UserTokens:
    """One per process: the signing secrets it opened (for `cache_seconds`) and the Redis generation copies."""

    def __init__(self, box: SecretBox, redis: Redis, *, cache_seconds: float) -> None:
        self._box = box
        self._redis = redis
        self._secrets: TtlCache[KeyId, bytes] = TtlCache(cache_seconds)
        self._signing: TtlCache[uuid.UUID, tuple[KeyId, bytes]] = TtlCache(cache_seconds)

    # -- verify -------------------------------------------------------------------------------------------------

    async def verify(self, session: AsyncSession, token: str, *, now: datetime | None = None) -> UserTokenClaims:
        """The claims of a valid, unrevoked token; `TokenRejected` for anything else."""
        now = now or now_utc()
        key_id = key_id_of(token)
        secret = await self._secret(session, key_id)
        claims = verify(token, key_id=key_id, secret=secret, now=now)
        if claims.generation != await self.generation(session, claims.tenant_id, claims.user):
            raise TokenRejected("token revoked")
        return claims

    async def _secret(self, session: AsyncSession, key_id: KeyId) -> bytes:
        secret = self._secrets.get(key_id)
        if secret is not None:
            return secret
        row = await repo.signing_key(session, key_id.tenant_id, key_id.version)
        if row is None:
            raise TokenRejected("no such signing key")
        try:
            secret = self._box.open_bytes(row.secret_enc, _binding(row.id))
        except SecretDecryptionError as exc:
            log.error("user-token signing key %s cannot be opened: %s", key_id, exc)
            raise TokenRejected("signing key unreadable") from None
        self._secrets.put(key_id, secret)
        return secret

    async def generation(self, session: AsyncSession, tenant_id: uuid.UUID, user: str) -> int:
        """The user's current generation: Redis' copy, else PostgreSQL's (copied to Redis unless a revocation
        wrote a newer one meanwhile)."""
        key = redis_keys.user_token_generation(tenant_id, user)
        try:
            cached = await self._redis.get(key)
        except (RedisError, OSError) as exc:
            log.warning("user-token generations unavailable in Redis (%s): reading PostgreSQL",
                        exc.__class__.__name__)
            return await repo.token_generation(session, tenant_id, user)
        if cached is not None:
            return int(cached)
        generation = await repo.token_generation(session, tenant_id, user)
        try:
            # NX: a revocation that wrote Redis after our read must not be overwritten by the older value
            await self._redis.set(key, generation, nx=True, ex=_GENERATION_TTL_SECONDS)
        except (RedisError, OSError):
            pass
        return generation

    # -- mint, revoke, rotate ------------------------------------------------------------------------------------

    async def mint(self, session: AsyncSession, tenant_id: uuid.UUID, user: str, ttl_seconds: int, *,
                   now: datetime | None = None) -> MintedToken:
        """A token for `user`; makes the tenant's first signing secret when it has none (the caller commits)."""
        now = now or now_utc()
        key_id, secret = await self._signing_key(session, tenant_id)
        generation = await self.generation(session, tenant_id, user)
        token, expires_at = mint(key_id=key_id, secret=secret, user=user, generation=generation, now=now,
                                 ttl_seconds=ttl_seconds)
        return MintedToken(token, user, expires_at)

    async def _signing_key(self, session: AsyncSession, tenant_id: uuid.UUID) -> tuple[KeyId, bytes]:
        cached = self._signing.get(tenant_id)
        if cached is not None:
            return cached
        row = await repo.newest_signing_key(session, tenant_id)
        if row is None:
            await self._add_version(session, tenant_id, 1)
            row = await repo.newest_signing_key(session, tenant_id)
            assert row is not None  # made just now, by us or by a concurrent first mint
        key_id = KeyId(tenant_id, row.version)
        secret = self._box.open_bytes(row.secret_enc, _binding(row.id))
        self._signing.put(tenant_id, (key_id, secret))
        self._secrets.put(key_id, secret)
        return key_id, secret

    async def _add_version(self, session: AsyncSession, tenant_id: uuid.UUID, version: int) -> bool:
        row_id = uuid.uuid4()
        return await repo.add_signing_key(session, key_id=row_id, tenant_id=tenant_id, version=version,
                                          secret_enc=self._box.seal(new_signing_secret(), _binding(row_id)))

    async def revoke(self, session: AsyncSession, tenant_id: uuid.UUID, user: str, *,
                     now: datetime | None = None) -> int:
        """Every token of `user` minted so far stops working in every process; returns the new generation.
        Redis is written before the caller commits: if the commit then fails, Redis is ahead of PostgreSQL, which
        refuses more tokens, never fewer."""
        now = now or now_utc()
        generation = await repo.bump_token_generation(session, tenant_id, user, at=now)
        try:
            await self._redis.set(redis_keys.user_token_generation(tenant_id, user), generation,
                                  ex=_GENERATION_TTL_SECONDS)
        except (RedisError, OSError) as exc:
            raise RevocationUnavailable(f"Redis did not answer ({exc.__class__.__name__})") from None
        add_audit(session, tenant_id=tenant_id, action="user_tokens.revoke", outcome="ok",
                  detail=f"every token of {user} minted so far (generation {generation})")
        return generation

    async def rotate(self, session: AsyncSession, tenant_id: uuid.UUID, *, drop_old: bool,
                     now: datetime | None = None) -> Rotation:
        """A new signing secret for the tenant. The previous version keeps verifying until its tokens have expired
        (older ones are dropped now); with `drop_old`, every older version goes at once, and with it every token
        of the tenant (processes that opened a secret keep it for `cache_seconds`)."""
        now = now or now_utc()
        newest = await repo.newest_signing_key(session, tenant_id)
        version = (newest.version if newest else 0) + 1
        if not await self._add_version(session, tenant_id, version):
            raise RuntimeError("another rotation of this tenant's user-token key ran at the same time; run it again")
        if drop_old:
            dropped = await repo.drop_signing_keys(session, tenant_id, below_version=version)
        elif newest is not None and newest.created_at < now - _SUPERSEDED_LONG_AGO:
            # every version before the previous one was replaced when the previous one was made, so the tokens
            # they signed have all expired since
            dropped = await repo.drop_signing_keys(session, tenant_id, below_version=newest.version)
        else:
            dropped = 0
        add_audit(session, tenant_id=tenant_id, action="user_tokens.rotate_key", outcome="ok",
                  detail=f"version {version}; {dropped} older version(s) dropped"
                         + ("; every earlier token stops working" if drop_old else ""))
        self._signing.pop(tenant_id)
        return Rotation(version, dropped)
