"""User tokens (CONTRACT 14): short-lived JWTs scoped to one user of one tenant, for the TimeTracker frontend.

A token is a compact JWS, HS256 (joserfc), signed with its tenant's secret of the version named in its header:
`kid` = `<tenant id>.<key version>`. Claims: `iss` (this service), `sub` (the TimeTracker user), `tid` (the tenant,
equal to the one in `kid`), `gen` (the user's revocation generation when it was minted), `iat`, `exp`, `jti`.
Nothing of a token is stored anywhere: verifying needs only the tenant's sealed secret and the user's current
generation (why signed rather than stored hashed: docs/frontend.md).

Only HS256 is accepted (never `none`, never an algorithm the header asks for), the token's length is bounded before
anything is parsed, and every way a token can be wrong is one exception, `TokenRejected`.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import OctKey

from app.security.api_keys import KEY_PREFIX

ISSUER = "tt-jira-sync"
ALGORITHM = "HS256"
# a token of a 200-character user name is about 500 characters; anything far longer is not one of ours
MAX_TOKEN_LENGTH = 2048
SECRET_BYTES = 32


class TokenRejected(Exception):
    """Not a valid user token: malformed, signed with another key, of another tenant, expired or revoked.
    The message is for logs and tests; callers answer a plain 401."""


class TokenExpired(TokenRejected):
    """A genuine token past its `exp`: the frontend should fetch a fresh one."""


@dataclass(frozen=True)
class KeyId:
    """Which secret signed a token: its tenant and the version of that tenant's secret."""

    tenant_id: uuid.UUID
    version: int

    def __str__(self) -> str:
        return f"{self.tenant_id}.{self.version}"


@dataclass(frozen=True)
class UserTokenClaims:
    """What a verified token says."""

    tenant_id: uuid.UUID
    user: str
    generation: int
    expires_at: datetime


def new_signing_secret() -> bytes:
    """A fresh per-tenant signing secret (256 bits, HS256's own size)."""
    return secrets.token_bytes(SECRET_BYTES)


def looks_like_user_token(credential: str) -> bool:
    """True for something shaped like a compact JWS (API keys start with `tts_` and carry no dots)."""
    return not credential.startswith(KEY_PREFIX) and credential.count(".") == 2


def key_id_of(token: str) -> KeyId:
    """The `kid` of a token's header, read before the signature can be checked (it names the key that checks it)."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("token too long")
    try:
        header = jws.extract_compact(token.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError) as exc:
        raise TokenRejected(f"malformed token: {exc.__class__.__name__}") from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str):
        raise TokenRejected("token header is not HS256 with a kid")
    tenant, _, version = kid.partition(".")
    try:
        return KeyId(uuid.UUID(tenant), int(version))
    except ValueError:
        raise TokenRejected("token kid is not <tenant>.<version>") from None


def mint(
    *, key_id: KeyId, secret: bytes, user: str, generation: int, now: datetime, ttl_seconds: int
) -> tuple[str, datetime]:
    """A signed token for `user` valid `ttl_seconds` from `now`, and when it expires."""
    issued = int(now.timestamp())
    expires = issued + ttl_seconds
    claims = {"iss": ISSUER, "sub": user, "tid": str(key_id.tenant_id), "gen": generation, "iat": issued,
              "exp": expires, "jti": secrets.token_urlsafe(12)}
    token = jwt.encode({"alg": ALGORITHM, "kid": str(key_id)}, claims, OctKey.import_key(secret),
                       algorithms=[ALGORITHM])
    return token, datetime.fromtimestamp(expires, UTC)


def verify(token: str, *, key_id: KeyId, secret: bytes, now: datetime) -> UserTokenClaims:
    """The claims of a token whose signature, issuer, tenant and expiry hold at `now`; `TokenRejected` otherwise.
    (The generation is the caller's to compare: it lives in the database.)"""
    try:
        decoded = jwt.decode(token, OctKey.import_key(secret), algorithms=[ALGORITHM])
        jwt.JWTClaimsRegistry(
            now=int(now.timestamp()), leeway=0, iss={"essential": True, "value": ISSUER},
            sub={"essential": True}, exp={"essential": True}, tid={"essential": True, "value": str(key_id.tenant_id)},
            gen={"essential": True},
        ).validate(decoded.claims)
    except ExpiredTokenError:
        raise TokenExpired("token expired") from None
    except JoseError as exc:
        raise TokenRejected(f"{exc.__class__.__name__}: {exc}") from None
    except (ValueError, UnicodeError) as exc:
        raise TokenRejected(f"malformed token: {exc.__class__.__name__}") from None
    claims = decoded.claims
    user, generation, expires = claims["sub"], claims["gen"], claims["exp"]
    if not isinstance(user, str) or not user or not isinstance(generation, int) or isinstance(generation, bool) \
            or not isinstance(expires, int):
        raise TokenRejected("token claims of the wrong type")
    return UserTokenClaims(key_id.tenant_id, user, generation, datetime.fromtimestamp(expires, UTC))

