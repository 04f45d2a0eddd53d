"""Connecting a user's JIRA account (CONTRACT 4, 11, 13): the OAuth 1.0a dance, and what every kind of connect
shares — claiming an authorization once, checking who approved, storing a working connection (`establish`),
denials, forgetting, link changes and rejected tokens. OAuth 2.0: `connect_oauth2`; personal access tokens:
`connect_pat`.

The request token is a bearer credential until it is exchanged: the database keeps only its SHA-256 (for
the callback's look-up) and a sealed copy (needed to sign the exchange). It is single use and expires
after ten minutes. Every request to JIRA is recorded in the audit log as `jira.<operation>`, and every
authentication event as `auth.<event>`; neither ever carries a token or a secret.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import now_utc
from app.db.models import ConnectionRow, JiraInstanceRow, OAuthRequestRow, Tenant
from app.db.repositories import entries as entries_repo
from app.db.repositories import jira as jira_repo
from app.domain.auth import AuthKind
from app.domain.entry import NotificationKind
from app.jira.client import JiraClient, JiraTarget
from app.jira.egress import EgressRefused
from app.jira.errors import AuthRejected, JiraError, RateLimited, TransientError
from app.jira.oauth_dance import authorize_url, fetch_access_token, fetch_request_token
from app.security.secrets import SecretDecryptionError, binding
from app.services.audit import CallLog
from app.services.credentials import Credentials
from app.services.entries import resume_after_connect
from app.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

ANY_CONNECT = object()  # reject_connection without a `connected_at`: whatever connect the token came from

CALLBACK_PATH = "/oauth/jira/callback"
REQUEST_TOKEN_TTL = timedelta(minutes=10)
# used or expired request tokens are kept a day for the audit trail's sake, then dropped
PURGE_AFTER = timedelta(days=1)
DENIED_VERIFIER = "denied"


class ConnectError(Exception):
    """Talking to JIRA failed during the dance; `message` is for a person and holds no secret.

    `refused` when the instance's address is refused by the egress rules (nothing was sent: HTTP 422),
    else JIRA failed (HTTP 502).
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused


class WrongJiraUser(Exception):
    """Another JIRA account approved than the one `oauth/start` expected; nothing was stored (HTTP 303/409)."""

    def __init__(self, approved: str, expected: str, *, token: bool = False) -> None:
        self.message = (
            f"this token belongs to JIRA user {approved or 'unknown'}, but {expected} was expected: nothing was "
            f"stored; use a token of {expected}" if token else
            f"JIRA user {approved or 'unknown'} approved the connection, but {expected} was expected: nothing was "
            f"stored; approve it as {expected}")
        super().__init__(self.message)
        self.approved = approved
        self.expected = expected


class InvalidRequestToken(ValueError):
    """The callback's `oauth_token` or `state` is unknown, already used or expired (HTTP 400)."""


@dataclass
class CallbackResult:
    status: str  # connected | denied
    tenant_id: uuid.UUID
    user: str
    jira_instance: uuid.UUID
    return_url: str | None
    jira_username: str | None = None
    due_entries: list[str] = field(default_factory=list)
    reason: str | None = None  # why a connection was denied, for a person


def token_hash(token: str) -> str:
    """The SHA-256 (hex) under which a request token is looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


def callback_url(public_base_url: str) -> str:
    return public_base_url.rstrip("/") + CALLBACK_PATH


def explain(error: JiraError, instance: JiraInstanceRow, step: str) -> str:
    """What a person should read when a step of the dance failed at JIRA."""
    where = f"JIRA instance {instance.name!r} ({instance.base_url})"
    if isinstance(error, EgressRefused):
        return error.message
    if isinstance(error, AuthRejected):
        problem = f" ({error.oauth_problem})" if error.oauth_problem else ""
        if instance.auth != AuthKind.OAUTH1:
            return f"{where} rejected our {step}{problem}"
        return (f"{where} rejected our {step}{problem}: check that its application link has consumer key "
                f"{instance.consumer_key!r} and this instance's public key")
    if isinstance(error, RateLimited):
        return f"{where} is rate limiting requests; try again in {error.retry_after:g} s"
    if isinstance(error, TransientError):
        return f"{where} could not be reached for the {step}: {error.message}"
    return f"{where} refused the {step}: {error.message}"


def step_failed(session: AsyncSession, exc: JiraError, instance: JiraInstanceRow, user: str, step: str, *,
                action: str = "auth.connect") -> ConnectError:
    """The `ConnectError` for a step that JIRA failed, with its audit row (the caller commits, storing nothing else)."""
    message = explain(exc, instance, step)
    entries_repo.add_audit(session, tenant_id=instance.tenant_id, action=action, outcome="failed",
                           jira_instance_id=instance.id, http_status=exc.status, detail=f"{user}: {message}")
    return ConnectError(message, refused=isinstance(exc, EgressRefused))


async def claimed_instance(session: AsyncSession, request: OAuthRequestRow, kind: AuthKind) -> JiraInstanceRow:
    """The instance a claimed authorization belongs to, still connecting users the way it was started."""
    name = "oauth_token" if kind is AuthKind.OAUTH1 else "state"
    instance = await jira_repo.get_instance(session, request.tenant_id, request.jira_instance_id)
    if instance is None:
        raise InvalidRequestToken(f"the JIRA instance of this {name} no longer exists")
    if instance.auth != kind:
        raise InvalidRequestToken(f"the JIRA instance no longer connects users with {kind.value}: start the "
                                  "connection again")
    return instance


async def start(
    session: AsyncSession, credentials: Credentials, jira: JiraClient, *, instance: JiraInstanceRow, user: str,
    return_url: str | None, public_base_url: str, expected_jira_user: str | None = None,
) -> str:
    """Fetch a request token, remember it, and return the URL where the user approves access.

    On a JIRA failure the audit rows are written (the caller still commits) and `ConnectError` is raised.
    """
    now = now_utc()
    calls = CallLog()
    box = credentials.box
    try:
        token, secret = await fetch_request_token(jira, credentials.consumer_target(instance),
                                                  callback_url(public_base_url), on_call=calls)
    except JiraError as exc:
        calls.write(session, instance.tenant_id)
        raise step_failed(session, exc, instance, user, "request for a request token",
                          action="auth.oauth_start") from None
    calls.write(session, instance.tenant_id)
    await jira_repo.purge_oauth_requests(session, older_than=now - PURGE_AFTER)
    request_id = uuid.uuid4()
    session.add(OAuthRequestRow(
        id=request_id, tenant_id=instance.tenant_id, jira_instance_id=instance.id, user=user,
        request_token_hash=token_hash(token),
        request_token_enc=box.seal(token, binding("oauth_requests", "request_token", request_id)),
        request_secret_enc=box.seal(secret, binding("oauth_requests", "request_secret", request_id)) if secret
        else None,
        return_url=return_url, expected_jira_user=expected_jira_user, created_at=now,
        expires_at=now + REQUEST_TOKEN_TTL,
    ))
    entries_repo.add_audit(session, tenant_id=instance.tenant_id, action="auth.oauth_start", outcome="ok",
                           jira_instance_id=instance.id, detail=f"{user} was sent to JIRA to approve access")
    return authorize_url(instance.base_url, token)


async def remember_state(
    session: AsyncSession, credentials: Credentials, *, instance: JiraInstanceRow, user: str, kind: AuthKind,
    return_url: str | None, expected_jira_user: str | None, verifier: str | None = None, how: str,
) -> str:
    """A new random OAuth 2.0 `state` (stored as its SHA-256, single use, ten minutes, bound to tenant, instance and
    user), with the PKCE `verifier` sealed when there is one; audited as `auth.oauth_start`. Returns the state."""
    now = now_utc()
    state = secrets.token_urlsafe(32)
    await jira_repo.purge_oauth_requests(session, older_than=now - PURGE_AFTER)
    request_id = uuid.uuid4()
    session.add(OAuthRequestRow(
        id=request_id, kind=kind.value, tenant_id=instance.tenant_id, jira_instance_id=instance.id,
        user=user, request_token_hash=token_hash(state),
        code_verifier_enc=credentials.box.seal(verifier, binding("oauth_requests", "code_verifier", request_id))
        if verifier else None,
        return_url=return_url, expected_jira_user=expected_jira_user, created_at=now,
        expires_at=now + REQUEST_TOKEN_TTL,
    ))
    entries_repo.add_audit(session, tenant_id=instance.tenant_id, action="auth.oauth_start", outcome="ok",
                           jira_instance_id=instance.id, detail=f"{user} was sent to {how} to approve access")
    return state


async def claim_request(session: AsyncSession, token: str, kind: AuthKind = AuthKind.OAUTH1) -> OAuthRequestRow:
    """Take the authorization of this callback (its OAuth 1.0a request token or OAuth 2.0 state), once: unknown, used
    or expired → `InvalidRequestToken`.

    The caller commits right away, so a second callback with the same token finds it used even while
    the first one is still talking to JIRA.
    """
    now = now_utc()
    name = "oauth_token" if kind is AuthKind.OAUTH1 else "state"
    row = await jira_repo.get_oauth_request(session, token_hash(token), lock=True) if token else None
    if row is None or row.kind != kind:
        raise InvalidRequestToken(f"unknown {name}: start the connection again")
    if row.used_at is not None:
        raise InvalidRequestToken(f"this {name} was already used: start the connection again")
    if row.expires_at <= now:
        raise InvalidRequestToken(f"this {name} expired (after 10 minutes): start the connection again")
    row.used_at = now
    return row


async def _connection(session: AsyncSession, tenant_id: uuid.UUID, instance_id: uuid.UUID,
                      user: str) -> ConnectionRow:
    connection = await jira_repo.get_connection(session, tenant_id, instance_id, user, lock=True)
    if connection is None:
        connection = ConnectionRow(id=uuid.uuid4(), tenant_id=tenant_id, jira_instance_id=instance_id, user=user,
                                   status="denied")
        session.add(connection)
    return connection


async def denied(session: AsyncSession, request: OAuthRequestRow, instance: JiraInstanceRow, *,
                 reason: str | None = None) -> CallbackResult:
    """The user refused access in JIRA (or, `reason`, the approval cannot serve the instance): record it (a working
    connection stays as it is)."""
    connection = await _connection(session, request.tenant_id, instance.id, request.user)
    if connection.status != "connected":
        connection.status = "denied"
        Credentials.clear_connection(connection)
        connection.updated_at = now_utc()
    entries_repo.add_audit(session, tenant_id=request.tenant_id, action="auth.denied", outcome="denied",
                           jira_instance_id=instance.id,
                           detail=f"{request.user}: {reason}" if reason else f"{request.user} denied access in JIRA")
    return CallbackResult("denied", request.tenant_id, request.user, instance.id, request.return_url, reason=reason)


async def complete(
    uow: UnitOfWork, credentials: Credentials, jira: JiraClient, *, request: OAuthRequestRow, verifier: str,
) -> CallbackResult:
    """Finish the OAuth 1.0a dance for a claimed request token: store the access token, or record the denial.

    A connect puts the user's `auth_required` entries of the instance back to pending (returned in
    `due_entries`; the unit of work wakes their pushers at commit) and marks their auth_required notifications read.
    """
    session = uow.session
    tenant_id, user = request.tenant_id, request.user
    instance = await claimed_instance(session, request, AuthKind.OAUTH1)
    if verifier == DENIED_VERIFIER:
        return await denied(session, request, instance)

    try:
        request_token = credentials.box.open(request.request_token_enc or b"",
                                             binding("oauth_requests", "request_token", request.id))
    except SecretDecryptionError:
        raise InvalidRequestToken("this oauth_token cannot be used any more: start the connection again") from None

    calls = CallLog()
    try:
        access, access_secret = await fetch_access_token(
            jira, credentials.consumer_target(instance), request_token, verifier, on_call=calls)
    except JiraError as exc:
        calls.write(session, tenant_id)
        raise step_failed(session, exc, instance, user, "exchange of the approved request token") from None

    try:
        approved = await approving_user(jira, credentials.consumer_target(instance, token=access), calls=calls,
                                        required=request.expected_jira_user is not None)
        check_expected_user(session, instance, user, expected=request.expected_jira_user, approved=approved)
    finally:
        calls.write(session, tenant_id)
    return await establish(
        uow, instance, user, jira_username=approved, return_url=request.return_url,
        seal=lambda connection: credentials.seal_connection(connection, access, token_secret=access_secret))


def check_expected_user(session: AsyncSession, instance: JiraInstanceRow, user: str, *, expected: str | None,
                        approved: str | None, token: bool = False) -> None:
    """CONTRACT 11: with an expected account, another one approving (or owning the token) stores nothing
    (`WrongJiraUser`, audited)."""
    if expected is None or (approved or "").casefold() == expected.casefold():
        return
    wrong = WrongJiraUser(approved or "", expected, token=token)
    entries_repo.add_audit(session, tenant_id=instance.tenant_id, action="auth.wrong_jira_user", outcome="refused",
                           jira_instance_id=instance.id, detail=f"{user}: {wrong.message}")
    raise wrong


async def establish(
    uow: UnitOfWork, instance: JiraInstanceRow, user: str, *, jira_username: str | None,
    seal: Callable[[ConnectionRow], None], return_url: str | None = None,
) -> CallbackResult:
    """The user's connection works now: `seal` stores its credential, the connection is `connected` as JIRA user
    `jira_username`, the user's `auth_required` entries of the instance are due again (returned in `due_entries`;
    the unit of work enqueues them at commit) and their auth_required notifications are read."""
    session, now, tenant_id = uow.session, now_utc(), instance.tenant_id
    connection = await _connection(session, tenant_id, instance.id, user)
    seal(connection)
    connection.status = "connected"
    connection.connected_at = connection.updated_at = now
    connection.jira_username = jira_username
    entries_repo.add_audit(session, tenant_id=tenant_id, action="auth.connected", outcome="ok",
                           jira_instance_id=instance.id,
                           detail=f"{user} connected as JIRA user {jira_username or 'unknown'} ({instance.auth})")
    tenant = await session.get(Tenant, tenant_id)
    waiting = list(await jira_repo.entries_waiting_for_auth(session, tenant_id, instance.id, user))
    due = await resume_after_connect(uow, tenant, waiting, now=now) if tenant is not None else []
    await jira_repo.mark_auth_notifications_read(session, tenant_id, instance.id, user, at=now)
    return CallbackResult("connected", tenant_id, user, instance.id, return_url, jira_username, due)


async def approving_user(jira: JiraClient, target: JiraTarget, *, calls: CallLog, required: bool) -> str | None:
    """The JIRA account the new credential in `target` acts for (`myself`); None when JIRA would not say and it is
    not `required` (else `ConnectError`: nothing can be stored without knowing)."""
    try:
        return (await jira.myself(target, on_call=calls)).name or None
    except JiraError as exc:
        if required:
            raise ConnectError(f"could not confirm which JIRA user approved ({exc.message}): nothing was stored; "
                               "start the connection again", refused=isinstance(exc, EgressRefused)) from None
        log.warning("connected, but JIRA's myself failed: %s", exc.message)
        return None


def connect_hint(instance: JiraInstanceRow, user: str) -> str:
    """How `user` connects to the instance, for messages that ask them to."""
    if instance.auth == AuthKind.PAT:
        return (f"store a personal access token with PUT /api/v1/users/{user}/connections/{instance.id}")
    return f"connect it with POST /api/v1/jira-instances/{instance.id}/oauth/start"


async def forget(session: AsyncSession, tenant_id: uuid.UUID, instance: JiraInstanceRow, user: str) -> bool:
    """Delete the user's connection (and its token); False when there was none."""
    connection = await jira_repo.get_connection(session, tenant_id, instance.id, user, lock=True)
    if connection is None:
        return False
    await session.delete(connection)
    entries_repo.add_audit(session, tenant_id=tenant_id, action="auth.disconnected", outcome="ok",
                           jira_instance_id=instance.id, detail=f"{user}'s JIRA token was forgotten")
    return True


async def disconnect_link_change(
    session: AsyncSession, instance: JiraInstanceRow, changed: list[str], *, now: datetime,
) -> list[str]:
    """The instance's JIRA link changed (CONTRACT 11): every user's token belongs to the old one. Connected users
    become `auth_required` with one notification each; stored tokens are dropped. Returns the users notified."""
    what = ", ".join(changed)
    notified: list[str] = []
    for connection in await jira_repo.instance_connections(session, instance.tenant_id, instance.id):
        if connection.status == "denied":
            continue
        if connection.status == "connected":
            connection.status = "auth_required"
            notified.append(connection.user)
            entries_repo.add_notification(
                session, tenant_id=instance.tenant_id, user=connection.user, kind=NotificationKind.AUTH_REQUIRED,
                jira_instance_id=instance.id,
                message=f"The JIRA link of {instance.name} changed ({what}): connect your JIRA account again")
        Credentials.clear_connection(connection)
        connection.updated_at = now
    if notified:
        entries_repo.add_audit(session, tenant_id=instance.tenant_id, action="auth.link_changed",
                               outcome="auth_required", jira_instance_id=instance.id,
                               detail=f"{what} changed: {', '.join(notified)} must connect again")
    return notified


async def reject_connection(
    session: AsyncSession, *, tenant_id: uuid.UUID, instance_id: uuid.UUID, user: str, oauth_problem: str | None,
    entry_id: str | None = None, context: str = "", connected_at: datetime | object | None = ANY_CONNECT,
) -> ConnectionRow | None:
    """JIRA answered 401 to this user's token (CONTRACT 10.6): the connection becomes `auth_required`.

    The one place a connection is marked rejected, whoever met the 401 (push, poller, ticket look-up). With
    `connected_at` (the connect the rejected token came from), a connection the user made again since is left
    alone: its new token was not the one refused. Returns the connection (locked), or None when the user has none.
    """
    connection = await jira_repo.get_connection(session, tenant_id, instance_id, user, lock=True)
    same_connect = connected_at is ANY_CONNECT or (connection is not None and connection.connected_at == connected_at)
    if connection is not None and connection.status == "connected" and same_connect:
        connection.status = "auth_required"
        connection.updated_at = now_utc()
        entries_repo.add_audit(
            session, tenant_id=tenant_id, action="auth.token_rejected", outcome="auth_required", entry_id=entry_id,
            jira_instance_id=instance_id, http_status=401,
            detail=f"JIRA rejected the token of {user} ({oauth_problem or 'no reason'}){context}",
        )
    return connection
