"""Connecting a user's JIRA account with a personal access token (CONTRACT 13, `auth: pat`).

The token is checked with `myself` before anything is stored (the request counts against the instance's rate
limit like any other): JIRA refusing it stores nothing (HTTP 422), the account it belongs to becomes the
connection's `jira_username`, and with `expected_jira_user` a token of another account stores nothing (HTTP 409).
A stored token works like any connection: a later 401 makes it `auth_required`, a new token resumes its entries.
"""

from __future__ import annotations

from app.db.models import JiraInstanceRow
from app.db.repositories import entries as entries_repo
from app.domain.auth import AuthKind
from app.jira.client import JiraClient
from app.jira.errors import AuthRejected, JiraError
from app.services.audit import CallLog
from app.services.connect import CallbackResult, check_expected_user, establish, step_failed
from app.services.credentials import Credentials
from app.services.unit_of_work import UnitOfWork

REJECTED = "JIRA rejected this token"


class TokenRejected(Exception):
    """JIRA answered 401 to the token (unknown, expired, revoked, or its user is inactive); nothing was stored."""

    message = f"{REJECTED}: it is unknown, expired or revoked, or its user is inactive; nothing was stored"


class NotATokenInstance(Exception):
    """The instance does not use personal access tokens (HTTP 409)."""

    def __init__(self, instance: JiraInstanceRow) -> None:
        self.message = (f"JIRA instance {instance.name!r} connects users with {instance.auth}, not personal access "
                        f"tokens: connect with POST /api/v1/jira-instances/{instance.id}/oauth/start")
        super().__init__(self.message)


async def connect_with_token(
    uow: UnitOfWork, credentials: Credentials, jira: JiraClient, *, instance: JiraInstanceRow, user: str, token: str,
    expected_jira_user: str | None = None,
) -> CallbackResult:
    """Check `token` with JIRA and store it as `user`'s connection to the instance; resumes their waiting entries."""
    if instance.auth != AuthKind.PAT:
        raise NotATokenInstance(instance)
    session, tenant_id = uow.session, instance.tenant_id
    calls = CallLog()
    try:
        me = await jira.myself(credentials.bearer_target(instance, token), on_call=calls)
    except AuthRejected:
        calls.write(session, tenant_id)
        entries_repo.add_audit(session, tenant_id=tenant_id, action="auth.token_refused", outcome="refused",
                               jira_instance_id=instance.id, http_status=401, detail=f"{user}: {REJECTED}")
        raise TokenRejected() from None
    except JiraError as exc:
        calls.write(session, tenant_id)
        raise step_failed(session, exc, instance, user, "check of the personal access token") from None
    calls.write(session, tenant_id)
    account = me.name or None
    check_expected_user(session, instance, user, expected=expected_jira_user, approved=account, token=True)
    return await establish(uow, instance, user, jira_username=account,
                           seal=lambda connection: credentials.seal_connection(connection, token))
