"""How an instance's users authenticate towards JIRA (CONTRACT 4, 12 and 13): the deployments and kinds, what each
needs, what makes a new JIRA link, and when an OAuth 2.0 access token is renewed. Pure."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from enum import StrEnum


class Deployment(StrEnum):
    """Where an instance runs (CONTRACT 12): a Data Center server of its own, or a Jira Cloud site."""

    DATACENTER = "datacenter"
    CLOUD = "cloud"


class AuthKind(StrEnum):
    """An instance's `auth`."""

    OAUTH1 = "oauth1"  # OAuth 1.0a application link (RSA-SHA1), the default
    OAUTH2 = "oauth2"  # Data Center 9.x OAuth 2.0 provider ("External application" link), PKCE, refresh tokens
    PAT = "pat"  # Data Center 8.14+ personal access tokens, one per user
    ATLASSIAN = "3lo"  # Jira Cloud: the service's OAuth 2.0 (3LO) app, rotating refresh tokens (the only Cloud kind)


def default_auth(deployment: Deployment) -> AuthKind:
    """The `auth` of an instance that names none."""
    return AuthKind.ATLASSIAN if deployment is Deployment.CLOUD else AuthKind.OAUTH1


# instance fields only one deployment uses: given for the other, they are a mistake
DEPLOYMENT_OF_FIELD: dict[str, Deployment] = {
    "base_url": Deployment.DATACENTER, "consumer_key": Deployment.DATACENTER,
    "private_key_pem": Deployment.DATACENTER, "client_id": Deployment.DATACENTER,
    "client_secret": Deployment.DATACENTER, "site_url": Deployment.CLOUD,
}
# the settings of the service's 3LO app (CONTRACT 12): without them no Cloud site can be connected
ATLASSIAN_APP_SETTINGS = ("ATLASSIAN_CLIENT_ID", "ATLASSIAN_CLIENT_SECRET")


# instance fields only one kind uses: given for another kind, they are a mistake (a secret sent for nothing)
KIND_OF_FIELD: dict[str, AuthKind] = {
    "private_key_pem": AuthKind.OAUTH1, "client_id": AuthKind.OAUTH2, "client_secret": AuthKind.OAUTH2,
}

# what identifies the JIRA link a user's token belongs to, per kind (CONTRACT 11: a change disconnects the users).
# A new client secret is not a new link: the tokens JIRA issued to the client stay valid.
LINK_FIELDS: dict[AuthKind, tuple[str, ...]] = {
    AuthKind.OAUTH1: ("base_url", "consumer_key", "key pair"),
    AuthKind.OAUTH2: ("base_url", "client_id"),
    AuthKind.PAT: ("base_url",),
    AuthKind.ATLASSIAN: ("site_url",),  # a new site: tokens stay valid, but the users' accounts may not reach it
}

# an access token is renewed this long before JIRA says it expires
REFRESH_AHEAD = timedelta(minutes=5)


def auth_problems(
    kind: AuthKind, *, given: Collection[str], has_client_id: bool, has_client_secret: bool,
) -> list[tuple[str, str]]:
    """(field, reason) for each thing wrong with an instance's authentication settings; empty when none.

    `given` are the fields of the request; `has_client_id`/`has_client_secret` whether the instance has them
    after the request (given now or stored before).
    """
    problems = [
        (name, f"is used only with auth {owner.value}; this instance's auth is {kind.value}")
        for name in sorted(given) if (owner := KIND_OF_FIELD.get(name)) is not None and owner is not kind
    ]
    if kind is AuthKind.OAUTH2:
        if not has_client_id:
            problems.append(("client_id", "is required with auth oauth2: the client ID of JIRA's incoming "
                                          "External application link"))
        if not has_client_secret:
            problems.append(("client_secret", "is required with auth oauth2: the client secret of JIRA's incoming "
                                              "External application link"))
    return problems


def deployment_problems(
    deployment: Deployment, kind: AuthKind, *, given: Collection[str], has_site_url: bool, has_base_url: bool,
    app_configured: bool,
) -> list[tuple[str, str]]:
    """(field, reason) for each thing that does not fit the instance's deployment; empty when none.

    `given` are the fields of the request; `has_site_url`/`has_base_url` whether the instance has them after it;
    `app_configured` whether the service's 3LO app is set up (ATLASSIAN_CLIENT_ID and _SECRET).
    """
    cloud = deployment is Deployment.CLOUD
    problems = [
        (name, f"is used only with deployment {owner.value}; this instance's deployment is {deployment.value}")
        for name in sorted(given) if (owner := DEPLOYMENT_OF_FIELD.get(name)) is not None and owner is not deployment
    ]
    if cloud and kind is not AuthKind.ATLASSIAN:
        problems.append(("auth", f"Jira Cloud sites connect users through the service's OAuth 2.0 (3LO) app only "
                                 f"(auth {AuthKind.ATLASSIAN.value}), not {kind.value}"))
    if not cloud and kind is AuthKind.ATLASSIAN:
        problems.append(("auth", f"{kind.value} is Jira Cloud's; set deployment cloud and site_url"))
    if cloud and not has_site_url:
        problems.append(("site_url", "is required with deployment cloud: the site's address, e.g. "
                                     "https://acme.atlassian.net"))
    if not cloud and not has_base_url:
        problems.append(("base_url", "is required with deployment datacenter, e.g. https://jira.example.com/jira"))
    if cloud and not app_configured:
        problems.append(("deployment", f"Jira Cloud needs the service's OAuth 2.0 (3LO) app: set "
                                       f"{' and '.join(ATLASSIAN_APP_SETTINGS)} (see README, Connecting Jira Cloud)"))
    return problems


def link_changes(before: AuthKind, after: AuthKind, changed: Collection[str]) -> list[str]:
    """Which changes make the instance a new JIRA link (its users' tokens belong to the old one): `auth` itself, or
    a field that identifies the link of the kind."""
    relevant = [name for name in LINK_FIELDS[after] if name in changed]
    return ["auth", *relevant] if before is not after else relevant


def refresh_due(issued_at: datetime, lifetime: timedelta) -> datetime:
    """When to renew an access token issued at `issued_at` that lives `lifetime`: `REFRESH_AHEAD` before it expires,
    or halfway through for a token that lives less than twice that."""
    return issued_at + max(lifetime - REFRESH_AHEAD, lifetime / 2)


def may_present_refresh_token(refresh_started_at: datetime | None, now: datetime,
                              reuse_leeway: timedelta | None) -> bool:
    """Whether the stored refresh token may be presented (again).

    `refresh_started_at` marks a refresh whose answer never arrived: JIRA may have rotated the token then. A server
    that accepts the token just replaced for a while (Atlassian: 10 minutes, `reuse_leeway`) answers a retry within
    it with a new pair, and treats a later one as a stolen token, revoking the user's consent; so after the leeway
    the token is never presented again. None: the server refuses a spent token without revoking anything.
    """
    if refresh_started_at is None or reuse_leeway is None:
        return True
    return now - refresh_started_at < reuse_leeway


# Atlassian ends a 3LO consent's refresh tokens 365 days after the consent, used or not; the user is told a month ahead
CONSENT_LIFETIME = timedelta(days=365)
EXPIRY_NOTICE_AHEAD = timedelta(days=30)


def expiry_notice_due(expires_at: datetime | None, notified_at: datetime | None, now: datetime) -> bool:
    """Whether a connection that ends at `expires_at` should tell its user now: within `EXPIRY_NOTICE_AHEAD` of the
    end, and not told yet for this consent (a reconnect is a new consent: its notice is reset)."""
    return expires_at is not None and notified_at is None and now >= expires_at - EXPIRY_NOTICE_AHEAD
