"""Connecting a user's Atlassian account to a Jira Cloud site through the service's 3LO app (CONTRACT 12).

`start` sends nothing anywhere: it remembers a random `state` (the database keeps its SHA-256, bound to tenant,
instance and user, single use, ten minutes) and answers Atlassian's authorize URL. The callback claims the state
once, exchanges the code at Atlassian's token endpoint, asks the gateway which sites the consent reaches
(`accessible-resources`): the instance's `site_url` must be among them (else the connection is `denied`: "this
Atlassian account cannot reach <site>"), which gives the site's `cloud_id`; then `myself` names the approving
accountId, checked against `expected_jira_user`. A consent lasts 365 days (`expires_at`); the user hears of its end a
month before (`notify_expiring`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import now_utc
from app.db.models import ConnectionRow, JiraInstanceRow, OAuthRequestRow
from app.db.repositories import entries as entries_repo
from app.db.repositories import jira as jira_repo
from app.domain.auth import ATLASSIAN_APP_SETTINGS, CONSENT_LIFETIME, AuthKind, expiry_notice_due
from app.domain.cloud import reachable_site
from app.domain.entry import NotificationKind
from app.jira.atlassian import reachable_sites
from app.jira.client import JiraClient
from app.jira.errors import JiraError, TokenRefused
from app.jira.token_refresh import TokenPair
from app.services.audit import CallLog
from app.services.connect import (
    CallbackResult,
    ConnectError,
    InvalidRequestToken,
    approving_user,
    check_expected_user,
    claimed_instance,
    denied,
    establish,
    remember_state,
    step_failed,
)
from app.services.connect_oauth2 import ACCESS_DENIED, CodeRefused
from app.services.credentials import Credentials
from app.services.unit_of_work import UnitOfWork


class AppNotConfigured(Exception):
    """The service has no 3LO app (ATLASSIAN_CLIENT_ID / ATLASSIAN_CLIENT_SECRET unset): HTTP 422."""

    message = (f"Jira Cloud needs the service's OAuth 2.0 (3LO) app: set {' and '.join(ATLASSIAN_APP_SETTINGS)} "
               "(see README, Connecting Jira Cloud)")


def _site(instance: JiraInstanceRow) -> str:
    return instance.site_url or instance.base_url


async def start(
    session: AsyncSession, credentials: Credentials, *, instance: JiraInstanceRow, user: str, return_url: str | None,
    expected_jira_user: str | None = None,
) -> str:
    """Remember a new state; return Atlassian's page where the user consents."""
    if not credentials.atlassian_app_configured:
        raise AppNotConfigured()
    state = await remember_state(session, credentials, instance=instance, user=user, kind=AuthKind.ATLASSIAN,
                                 return_url=return_url, expected_jira_user=expected_jira_user,
                                 how=f"Atlassian (3LO) for {_site(instance)}")
    return credentials.atlassian_authorize_url(state)


async def complete(
    uow: UnitOfWork, credentials: Credentials, jira: JiraClient, *, request: OAuthRequestRow, code: str | None,
    error: str | None, error_description: str | None,
) -> CallbackResult:
    """Finish a claimed state: exchange the code, find the site, check who approved and store the pair; or record
    the denial (refused at Atlassian, or an account that cannot reach the site)."""
    session = uow.session
    tenant_id, user = request.tenant_id, request.user
    instance = await claimed_instance(session, request, AuthKind.ATLASSIAN)
    if error == ACCESS_DENIED:
        return await denied(session, request, instance)
    if error:
        why = (f"{error}: {error_description}" if error_description else error)[:300]
        entries_repo.add_audit(session, tenant_id=tenant_id, action="auth.connect", outcome="failed",
                               jira_instance_id=instance.id, detail=f"{user}: Atlassian answered {why}")
        raise ConnectError(f"Atlassian refused the authorization for {_site(instance)} ({why}): check the app's "
                           f"callback URL ({credentials.atlassian_app().redirect_uri}) and its Jira scopes in "
                           "Atlassian's developer console")
    if not code:
        raise InvalidRequestToken("code is missing: start the connection again")
    if not credentials.atlassian_app_configured:
        raise ConnectError(AppNotConfigured.message, refused=True)

    calls = CallLog()
    try:
        try:
            pair = await credentials.atlassian_tokens(instance).exchange_code(code, on_call=calls)
        except JiraError as exc:
            raise _exchange_failed(session, exc, instance, user) from None
        try:
            sites = await reachable_sites(jira, credentials.gateway_target(instance, pair.access_token),
                                          on_call=calls)
        except JiraError as exc:
            raise step_failed(session, exc, instance, user, "look-up of the sites the consent reaches") from None
        site = reachable_site(sites, _site(instance))
        if site is None:
            return await denied(session, request, instance,
                                reason=f"this Atlassian account cannot reach {_site(instance)}")
        if instance.cloud_id and instance.cloud_id != site.cloud_id:
            message = (f"{_site(instance)} is now a different Jira Cloud site (cloud id {site.cloud_id}, was "
                       f"{instance.cloud_id}): nothing was stored; check the instance's site_url")
            entries_repo.add_audit(session, tenant_id=tenant_id, action="auth.connect", outcome="failed",
                                   jira_instance_id=instance.id, detail=f"{user}: {message}")
            raise ConnectError(message)
        target = credentials.bearer_target(instance, pair.access_token, cloud_id=site.cloud_id)
        approved = await approving_user(jira, target, calls=calls, required=request.expected_jira_user is not None)
        check_expected_user(session, instance, user, expected=request.expected_jira_user, approved=approved)
    finally:
        calls.write(session, tenant_id)
    if not instance.cloud_id:
        instance.cloud_id = site.cloud_id  # the first connection found the site: its REST API is now reachable
    consented_at = now_utc()
    return await establish(uow, instance, user, jira_username=approved, return_url=request.return_url,
                           seal=lambda connection: _seal(credentials, connection, pair, consented_at))


def _seal(credentials: Credentials, connection: ConnectionRow, pair: TokenPair, consented_at: datetime) -> None:
    """Store the pair; the consent (and so the refresh tokens) ends 365 days from now, its notice not yet sent."""
    credentials.seal_connection(connection, pair.access_token, pair=pair)
    connection.expires_at = consented_at + CONSENT_LIFETIME
    connection.expiry_notified_at = None


def _exchange_failed(session: AsyncSession, exc: JiraError, instance: JiraInstanceRow, user: str) -> Exception:
    """The exception for a code exchange that failed, with its audit row (nothing else is stored)."""
    if not isinstance(exc, TokenRefused):
        return step_failed(session, exc, instance, user, "exchange of the authorization code")
    if exc.error in ("invalid_client", "access_denied", "unauthorized_client"):
        message = (f"Atlassian refused the service's app credentials ({exc.error}): nothing was stored; check "
                   f"{' and '.join(ATLASSIAN_APP_SETTINGS)} against the app in Atlassian's developer console")
        failure: Exception = ConnectError(message)
    else:
        message = (f"Atlassian refused the authorization code ({exc.error}: {exc.description or 'no reason given'}): "
                   "nothing was stored; start the connection again")
        failure = CodeRefused(message)
    entries_repo.add_audit(session, tenant_id=instance.tenant_id, action="auth.connect", outcome="failed",
                           jira_instance_id=instance.id, http_status=exc.status, detail=f"{user}: {message}")
    return failure


async def notify_expiring(session: AsyncSession, instance: JiraInstanceRow, *, now: datetime) -> list[str]:
    """Tell each user whose consent to this Cloud site ends within 30 days, once per consent (an `auth_required`
    notification: reconnecting renews the consent and marks it read). Returns the users told; the caller commits."""
    told: list[str] = []
    for connection in await jira_repo.instance_connections(session, instance.tenant_id, instance.id):
        ends = connection.expires_at
        if ends is None or connection.status != "connected" or not expiry_notice_due(
                ends, connection.expiry_notified_at, now):
            continue
        connection.expiry_notified_at = now
        day = ends.date().isoformat()
        entries_repo.add_notification(
            session, tenant_id=instance.tenant_id, user=connection.user, kind=NotificationKind.AUTH_REQUIRED,
            jira_instance_id=instance.id,
            message=f"Your Jira Cloud connection to {instance.name} ({_site(instance)}) ends on {day} (a year after "
                    "you allowed it): connect your Atlassian account again before then to keep your entries syncing")
        told.append(connection.user)
    if told:
        entries_repo.add_audit(session, tenant_id=instance.tenant_id, action="auth.consent_expiring",
                               outcome="notified", jira_instance_id=instance.id,
                               detail=f"{', '.join(told)}: consent ends within 30 days")
    return told
