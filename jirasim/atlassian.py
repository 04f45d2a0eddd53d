"""Atlassian's authorization server for OAuth 2.0 (3LO) apps: consent, codes, and rotating refresh tokens.

Modelled on Atlassian's documentation (its server is built on Auth0):

* ``/authorize`` takes ``audience=api.atlassian.com``, ``client_id``, ``scope``, ``redirect_uri``, ``state``,
  ``response_type=code`` and ``prompt=consent``; the person chooses which sites the grant covers.
* ``/oauth/token`` takes a JSON body. Access tokens live one hour. A refresh token is issued only for the
  ``offline_access`` scope; every refresh returns a new one ("rotating refresh tokens"). The token just
  replaced may be presented again within the *leeway interval* (10 minutes): that issues a new pair (Auth0:
  "only the previous token can be reused") and supersedes the token the lost answer carried. Presenting any
  other spent token (the previous one after the interval, an older one, a superseded one) is *reuse*: every
  token of that user's grant for that app is revoked and the user must consent again (``invalid_grant``,
  403). Refresh tokens expire 90 days after they were issued unused, and 365 days after consent, refreshes
  notwithstanding.

Simplification: a revoked grant also ends its access tokens at once (Atlassian's are JWTs that may live on
until they expire); tests then see the loss of consent immediately.
"""

from __future__ import annotations

import dataclasses
import hmac
import itertools
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .cloud_limits import PointsPool
from .cloud_spec import oauth_scopes
from .config import AUTH_SERVER_NAME, AtlassianAppConfig, AtlassianConfig
from .faults import FaultInjector
from .instance import CloudSite
from .oauth2 import OAuth2Error, RedirectableError
from .state import User

AUDIENCE = "api.atlassian.com"
INVALID_REFRESH = "Unknown or invalid refresh token."


@dataclass(frozen=True)
class Account:
    """An Atlassian account: the same person (accountId) on every Cloud site that has them as a user."""

    account_id: str
    name: str
    display_name: str
    email: str


@dataclass(frozen=True)
class ConsentRequest:
    """The checked parameters of ``/authorize``."""

    app: AtlassianAppConfig
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str


@dataclass
class AuthCode:
    code: str
    client_id: str
    account_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    cloud_ids: tuple[str, ...]
    expires_at: float
    used: bool = False


@dataclass
class RefreshToken:
    value: str
    family_id: int
    issued_at: float
    rotated_at: float | None = None  # when it was exchanged (or superseded)


@dataclass
class Family:
    """The tokens of one code exchange: a chain of refresh tokens, its access tokens, one consent."""

    id: int
    client_id: str
    account_id: str
    scopes: tuple[str, ...]
    cloud_ids: tuple[str, ...]
    consented_at: float
    current: str | None = None  # the refresh token to use next
    previous: str | None = None  # the one it replaced (reusable within the leeway interval)
    revoked: bool = False


@dataclass
class AccessToken:
    value: str
    family_id: int
    client_id: str
    account_id: str
    scopes: tuple[str, ...]
    cloud_ids: tuple[str, ...]
    expires_at: float


@dataclass
class AtlassianAuth:
    """The authorization server's state. ``sites`` lists the simulator's Cloud sites (people and cloud ids)."""

    config: AtlassianConfig
    sites: Callable[[], Iterable[CloudSite]]
    name: str = AUTH_SERVER_NAME
    faults: FaultInjector = field(default_factory=FaultInjector)
    apps: dict[str, AtlassianAppConfig] = field(default_factory=dict)
    pools: dict[str, PointsPool] = field(default_factory=dict)  # the apps' global points pools
    codes: dict[str, AuthCode] = field(default_factory=dict)
    families: dict[int, Family] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    counts_by_account: dict[str, Counter[str]] = field(default_factory=dict)
    clock_offset: float = 0.0

    def __post_init__(self) -> None:
        self._family_ids = itertools.count(1)
        self.settings = dataclasses.replace(self.config)
        self.reset()

    # -- lifecycle -----------------------------------------------------------------------
    def reset(self, state: bool = True, counters: bool = True) -> None:
        if state:
            self.settings = dataclasses.replace(self.config)
            self.apps = {a.client_id: a for a in self.config.apps}
            self.pools = {}
            self.codes.clear()
            self.families.clear()
            self.refresh_tokens.clear()
            self.access_tokens.clear()
            self.clock_offset = 0.0
            self.faults = FaultInjector()
        if counters:
            self.counts.clear()
            self.counts_by_account.clear()
            for pool in self.pools.values():
                pool.used.clear()

    def now(self) -> float:
        """The authorization server's clock: wall time plus what tests advanced it by (token lifetimes)."""
        return time.time() + self.clock_offset

    def count(self, what: str, account_id: str | None = None) -> None:
        self.counts[what] += 1
        account = self.account(account_id) if account_id else None
        if account is not None:
            self.counts_by_account.setdefault(account.name, Counter())[what] += 1

    # -- apps and their global points pools -------------------------------------------------
    def add_app(self, app: AtlassianAppConfig) -> None:
        self.apps[app.client_id] = app
        self.pools.pop(app.client_id, None)

    def pool(self, client_id: str) -> PointsPool | None:
        app = self.apps.get(client_id)
        if app is None or app.points_per_hour is None:
            return None
        window = self.settings.quota_window_seconds
        pool = self.pools.get(client_id)
        if pool is None or pool.limit != app.points_per_hour or pool.window != window:
            pool = self.pools[client_id] = PointsPool("global-app-quota", app.points_per_hour, window)
        return pool

    def authenticate_client(self, params: dict[str, Any]) -> AtlassianAppConfig:
        app = self.apps.get(str(params.get("client_id") or ""))
        secret = str(params.get("client_secret") or "")
        if app is None or not hmac.compare_digest(app.client_secret.encode(), secret.encode()):
            self.count("invalid_client")
            raise OAuth2Error(401, "access_denied", "Unauthorized")
        return app

    # -- accounts -------------------------------------------------------------------------------
    def accounts(self) -> dict[str, Account]:
        """Every account some Cloud site knows, by accountId."""
        found: dict[str, Account] = {}
        for site in self.sites():
            for user in site.state.users.values():
                found.setdefault(user.account_id, Account(user.account_id, user.name, user.display_name, user.email))
        return found

    def account(self, ref: str | None) -> Account | None:
        """An account by accountId or by (simulator) user name."""
        if not ref:
            return None
        accounts = self.accounts()
        return accounts.get(ref) or next((a for a in accounts.values() if a.name == ref), None)

    def default_approver(self) -> Account | None:
        if self.settings.approve_as:
            return self.account(self.settings.approve_as)
        return next(iter(self.accounts().values()), None)

    def sites_of(self, account_id: str) -> list[CloudSite]:
        return [s for s in self.sites() if self.member(s, account_id) is not None]

    @staticmethod
    def member(site: CloudSite, account_id: str) -> User | None:
        user = site.state.user_by_account(account_id)
        return user if user is not None and user.active else None

    def consent_sites(self, account_id: str, choice: Iterable[str] | None) -> tuple[str, ...]:
        """Cloud ids a consent covers: the chosen sites (names, URLs or ids) the account belongs to."""
        mine = self.sites_of(account_id)
        if choice is None:
            return tuple(s.cloud_id for s in mine)
        wanted = {c.strip().rstrip("/") for c in choice if c.strip()}
        return tuple(s.cloud_id for s in mine if wanted & {s.name, s.site_url, s.cloud_id})

    # -- authorize -------------------------------------------------------------------------------
    def check_consent_request(self, params: dict[str, str]) -> ConsentRequest:
        """Unknown client or a redirect URI the app did not register: ValueError (a page, never a redirect);
        anything else wrong: RedirectableError."""
        app = self.apps.get(params.get("client_id", ""))
        if app is None:
            raise ValueError("Invalid client: no app has this client_id.")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri or (app.callback_urls and redirect_uri not in app.callback_urls):
            raise ValueError("redirect_uri is not a callback URL of this app.")
        state = params.get("state", "")

        def fail(error: str, description: str) -> RedirectableError:
            return RedirectableError(redirect_uri, state or None, error, description)

        if params.get("response_type") != "code":
            raise fail("unsupported_response_type", "response_type must be code")
        if params.get("audience") != AUDIENCE:
            raise fail("invalid_request", f"audience must be {AUDIENCE}")
        if params.get("prompt") != "consent":
            raise fail("invalid_request", "prompt must be consent")
        if not state:
            raise fail("invalid_request", "state is required")
        scopes = tuple(params.get("scope", "").split())
        unknown = [s for s in scopes if s not in oauth_scopes()]
        if not scopes or unknown:
            raise fail("invalid_scope", f"unknown scope {' '.join(unknown) or '(none given)'}")
        return ConsentRequest(app, redirect_uri, scopes, state)

    def issue_code(self, request: ConsentRequest, account: Account, cloud_ids: tuple[str, ...]) -> AuthCode:
        code = AuthCode(
            code=secrets.token_urlsafe(24),
            client_id=request.app.client_id,
            account_id=account.account_id,
            redirect_uri=request.redirect_uri,
            scopes=request.scopes,
            cloud_ids=cloud_ids,
            expires_at=self.now() + self.settings.code_seconds,
        )
        self.codes[code.code] = code
        self.count("consents", account.account_id)
        return code

    # -- token endpoint ----------------------------------------------------------------------------
    def exchange_code(self, params: dict[str, Any]) -> dict[str, Any]:
        app = self.authenticate_client(params)
        code = self.codes.get(str(params.get("code") or ""))
        if code is None or code.client_id != app.client_id or code.used or self.now() > code.expires_at:
            self.count("invalid_grant")
            raise OAuth2Error(403, "invalid_grant", "Invalid authorization code")
        if str(params.get("redirect_uri") or "") != code.redirect_uri:
            self.count("invalid_grant")
            raise OAuth2Error(403, "invalid_grant", "redirect_uri does not match the authorization request")
        code.used = True
        family = Family(
            id=next(self._family_ids),
            client_id=app.client_id,
            account_id=code.account_id,
            scopes=code.scopes,
            cloud_ids=code.cloud_ids,
            consented_at=self.now(),
        )
        self.families[family.id] = family
        if "offline_access" in family.scopes:
            family.current = self._new_refresh(family).value
        self.count("code_exchanges", family.account_id)
        return self._answer(family)

    def refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        app = self.authenticate_client(params)
        value = str(params.get("refresh_token") or "")
        token = self.refresh_tokens.get(value)
        family = self.families.get(token.family_id) if token is not None else None
        if token is None or family is None or family.client_id != app.client_id or family.revoked:
            self.count("invalid_grant")
            raise OAuth2Error(403, "invalid_grant", INVALID_REFRESH)
        now = self.now()
        settings = self.settings
        if now >= family.consented_at + settings.refresh_absolute_seconds:
            self.count("expired_refresh", family.account_id)
            raise OAuth2Error(403, "invalid_grant", INVALID_REFRESH)
        if value == family.current:
            if now >= token.issued_at + settings.refresh_inactivity_seconds:
                self.count("expired_refresh", family.account_id)
                raise OAuth2Error(403, "invalid_grant", INVALID_REFRESH)
            token.rotated_at = now
            family.previous = value
            self.count("refreshes", family.account_id)
        elif (
            value == family.previous
            and token.rotated_at is not None
            and now - token.rotated_at <= settings.refresh_reuse_interval_seconds
        ):
            lost = self.refresh_tokens.get(family.current or "")
            if lost is not None:
                lost.rotated_at = now  # superseded: the answer that carried it never arrived
            self.count("reuse_within_interval", family.account_id)
        else:
            self.count("reuse_detected", family.account_id)
            self.revoke(account_id=family.account_id, client_id=family.client_id)
            raise OAuth2Error(403, "invalid_grant", INVALID_REFRESH)
        family.current = self._new_refresh(family).value
        return self._answer(family)

    def _new_refresh(self, family: Family) -> RefreshToken:
        token = RefreshToken(secrets.token_urlsafe(48), family.id, self.now())
        self.refresh_tokens[token.value] = token
        return token

    def _answer(self, family: Family) -> dict[str, Any]:
        access = AccessToken(
            value=secrets.token_urlsafe(64),
            family_id=family.id,
            client_id=family.client_id,
            account_id=family.account_id,
            scopes=family.scopes,
            cloud_ids=family.cloud_ids,
            expires_at=self.now() + self.settings.access_token_seconds,
        )
        self.access_tokens[access.value] = access
        answer: dict[str, Any] = {
            "access_token": access.value,
            "expires_in": round(self.settings.access_token_seconds),
            "token_type": "Bearer",
            "scope": " ".join(family.scopes),
        }
        if family.current is not None:
            answer["refresh_token"] = family.current
        return answer

    def grant(self, client_id: str, account_ref: str, sites: Iterable[str] | None, scopes: Iterable[str]) -> Any:
        """A consent and its first token answer without the browser dance (control API)."""
        if client_id not in self.apps:
            raise KeyError(f"unknown Atlassian app {client_id!r}")
        account = self.account(account_ref)
        if account is None:
            raise KeyError(f"unknown Atlassian account {account_ref!r}")
        request = ConsentRequest(self.apps[client_id], "http://127.0.0.1/", tuple(scopes), "control")
        code = self.issue_code(request, account, self.consent_sites(account.account_id, sites))
        secret = self.apps[client_id].client_secret
        params = {"client_id": client_id, "client_secret": secret, "code": code.code, "redirect_uri": code.redirect_uri}
        return self.exchange_code(params)

    # -- access tokens -----------------------------------------------------------------------------
    def peek(self, value: str | None) -> AccessToken | None:
        """The access token with this value, usable or not (the gateway charges the app before checking)."""
        return self.access_tokens.get(value or "")

    def check_access(self, value: str | None) -> tuple[AccessToken | None, str]:
        access = self.peek(value)
        if access is None:
            return None, "token_unknown"
        if self.families[access.family_id].revoked:
            return None, "token_revoked"
        if self.now() >= access.expires_at:
            return None, "token_expired"
        return access, ""

    def accessible_resources(self, access: AccessToken) -> list[dict[str, Any]]:
        scopes = [s for s in access.scopes if s != "offline_access"]
        return [
            {
                "id": site.cloud_id,
                "url": site.site_url,
                "name": site.name,
                "scopes": scopes,
                "avatarUrl": "https://site-admin-avatar-cdn.example.invalid/avatars/240/site.png",
            }
            for site in self.sites()
            if site.cloud_id in access.cloud_ids and self.member(site, access.account_id) is not None
        ]

    # -- control ---------------------------------------------------------------------------------
    def revoke(self, account_id: str | None = None, client_id: str | None = None) -> int:
        """Revoke grants (every token family of an account and/or app): the user must consent again."""
        count = 0
        for family in self.families.values():
            if family.revoked or (account_id and family.account_id != account_id):
                continue
            if client_id and family.client_id != client_id:
                continue
            family.revoked = True
            count += 1
        if count:
            self.counts["revoked_grants"] += count
        return count

    def expire_access(self, account_id: str | None = None) -> int:
        """Make current access tokens expire now (tests: "the token expired mid-backlog")."""
        now = self.now()
        expired = 0
        for access in self.access_tokens.values():
            if access.expires_at > now and account_id in (None, access.account_id):
                access.expires_at = now - 0.001
                expired += 1
        return expired

    def grants(self) -> list[dict[str, Any]]:
        """Every token family, without token values."""
        accounts = self.accounts()
        now = self.now()
        return [
            {
                "id": f.id,
                "client_id": f.client_id,
                "account_id": f.account_id,
                "user": accounts[f.account_id].name if f.account_id in accounts else None,
                "scopes": list(f.scopes),
                "cloud_ids": list(f.cloud_ids),
                "consented_at": f.consented_at,
                "expires_at": f.consented_at + self.settings.refresh_absolute_seconds,
                "has_refresh_token": f.current is not None,
                "revoked": f.revoked,
                "access_tokens_valid": sum(
                    1 for a in self.access_tokens.values() if a.family_id == f.id and a.expires_at > now
                ),
            }
            for f in self.families.values()
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "settings": self.settings.settings(),
            "apps": [a.to_dict() for a in self.apps.values()],
            "accounts": {a.name: a.account_id for a in self.accounts().values()},
            "sites": [{"name": s.name, "cloud_id": s.cloud_id, "url": s.site_url} for s in self.sites()],
            "clock_offset_seconds": self.clock_offset,
        }
