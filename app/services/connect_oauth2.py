"""Connecting a user's JIRA account through Data Center's OAuth 2.0 provider (CONTRACT 13): start and callback.

`start` sends nothing to JIRA: it remembers a random `state` (the database keeps its SHA-256, bound to tenant,
instance and user, single use, ten minutes) with a sealed PKCE verifier, and answers JIRA's authorize URL with the
verifier's S256 challenge. The callback claims the state once, exchanges the code with the verifier at once (JIRA's
codes live seconds), asks JIRA who approved, and stores the pair like section 4's callback stores an access token.
A code JIRA refuses (PKCE mismatch, used, expired), a refused client secret, or an approval by another account than
the expected one store nothing.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import JiraInstanceRow, OAuthRequestRow
from app.db.repositories import entries as entries_repo
from app.domain.auth import AuthKind
from app.jira.client import JiraClient
from app.jira.errors import JiraError, TokenRefused
from app.jira.oauth2 import authorize_url, new_code_verifier
from app.security.secrets import SecretDecryptionError, binding
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
from app.services.credentials import Credentials
from app.services.unit_of_work import UnitOfWork

ACCESS_DENIED = "access_denied"


class CodeRefused(Exception):
    """JIRA refused the authorization code (PKCE mismatch, used, expired); nothing was stored (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def start(
    session: AsyncSession, credentials: Credentials, *, instance: JiraInstanceRow, user: str, return_url: str | None,
    expected_jira_user: str | None = None,
) -> str:
    """Remember a new state and PKCE verifier; return the URL where the user approves access."""
    verifier = new_code_verifier()
    state = await remember_state(session, credentials, instance=instance, user=user, kind=AuthKind.OAUTH2,
                                 return_url=return_url, expected_jira_user=expected_jira_user, verifier=verifier,
                                 how="JIRA (OAuth 2.0)")
    return authorize_url(instance.base_url, credentials.oauth2_client(instance), state=state, verifier=verifier)


async def complete(
    uow: UnitOfWork, credentials: Credentials, jira: JiraClient, *, request: OAuthRequestRow, code: str | None,
    error: str | None, error_description: str | None,
) -> CallbackResult:
    """Finish a claimed state: exchange the code and store the pair, or record the denial."""
    session = uow.session
    tenant_id, user = request.tenant_id, request.user
    instance = await claimed_instance(session, request, AuthKind.OAUTH2)
    if error == ACCESS_DENIED:
        return await denied(session, request, instance)
    if error:
        why = f"{error}: {error_description}" if error_description else error
        entries_repo.add_audit(session, tenant_id=tenant_id, action="auth.connect", outcome="failed",
                               jira_instance_id=instance.id, detail=f"{user}: JIRA answered {why[:300]}")
        raise ConnectError(f"JIRA instance {instance.name!r} refused the authorization ({why[:300]}): check that its "
                           "External application link permits the WRITE scope and has the redirect URL "
                           f"{credentials.oauth2_client(instance).redirect_uri}")
    if not code:
        raise InvalidRequestToken("code is missing: start the connection again")
    try:
        verifier = credentials.box.open(request.code_verifier_enc or b"",
                                        binding("oauth_requests", "code_verifier", request.id))
    except SecretDecryptionError:
        raise InvalidRequestToken("this state cannot be used any more: start the connection again") from None

    calls = CallLog()
    try:
        pair = await credentials.token_endpoint(instance).exchange_code(code, verifier, on_call=calls)
    except JiraError as exc:
        calls.write(session, tenant_id)
        raise _exchange_failed(session, exc, instance, user) from None
    target = credentials.bearer_target(instance, pair.access_token)
    try:
        approved = await approving_user(jira, target, calls=calls, required=request.expected_jira_user is not None)
        check_expected_user(session, instance, user, expected=request.expected_jira_user, approved=approved)
    finally:
        calls.write(session, tenant_id)
    return await establish(
        uow, instance, user, jira_username=approved, return_url=request.return_url,
        seal=lambda connection: credentials.seal_connection(connection, pair.access_token, pair=pair))


def _exchange_failed(session: AsyncSession, exc: JiraError, instance: JiraInstanceRow, user: str) -> Exception:
    """The exception for a code exchange that failed, with its audit row (nothing else is stored)."""
    if not isinstance(exc, TokenRefused):
        return step_failed(session, exc, instance, user, "exchange of the authorization code")
    if exc.error == "invalid_client":
        message = (f"JIRA instance {instance.name!r} refused this instance's client_id and client_secret "
                   f"({exc.error}): nothing was stored; check them against JIRA's External application link")
        failure: Exception = ConnectError(message)
    else:
        message = (f"JIRA refused the authorization code ({exc.error}: {exc.description or 'no reason given'}): "
                   "nothing was stored; start the connection again")
        failure = CodeRefused(message)
    entries_repo.add_audit(session, tenant_id=instance.tenant_id, action="auth.connect", outcome="failed",
                           jira_instance_id=instance.id, http_status=exc.status, detail=f"{user}: {message}")
    return failure
