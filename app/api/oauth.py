"""Connecting a user's JIRA account through OAuth (CONTRACT sections 4, 11, 12 and 13): start and the callbacks.

`oauth/start` answers the JIRA page where the user approves access: OAuth 1.0a (`auth: oauth1`, a request token
fetched from JIRA), OAuth 2.0 (`auth: oauth2`, a state and a PKCE challenge; nothing is sent to JIRA yet) or, for a
Jira Cloud site, Atlassian's consent page for the service's 3LO app (a state; nothing is sent yet).
Instances with `auth: pat` take personal access tokens instead (`PUT /api/v1/users/{user}/connections/{id}`).

The callbacks carry no API key: each is bound to the single-use request token or state that `start` made.
After a connect they answer 303 to the `return_url` given at start, or 200 with JSON when none was given;
a denial always answers 200 `{"status": "denied", …}`. JIRA failures are 502 with a readable message; an OAuth 2.0
code JIRA refuses (PKCE mismatch, used, expired) is 400. An approval by another JIRA account than
`expected_jira_user` stores nothing: 303 to the `return_url` with `error=wrong_jira_user` added, or 409 without one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse, RedirectResponse, Response

from app.api.deps import (
    USER_SCOPED,
    Caller,
    CallerDep,
    CredentialsDep,
    EgressDep,
    InstanceDep,
    JiraDep,
    SessionDep,
    SettingsDep,
    UnitOfWorkDep,
)
from app.api.schemas.common import ErrorOut, error_responses
from app.api.schemas.jira import OAuthCallbackOut, OAuthStartIn, OAuthStartOut
from app.db.models import OAuthRequestRow
from app.domain.auth import AuthKind
from app.domain.origins import allows, origin_of
from app.jira.egress import EgressRefused
from app.services import connect, connect_atlassian, connect_oauth2
from app.services.credentials import ATLASSIAN_CALLBACK_PATH, OAUTH2_CALLBACK_PATH
from app.services.unit_of_work import UnitOfWork

router = APIRouter(tags=["connections"])

_502: dict[int | str, dict[str, Any]] = {
    502: {"description": "JIRA could not be reached or refused the OAuth step", "model": ErrorOut}}
_CALLBACK_ANSWERS: dict[int | str, dict[str, Any]] = {
    303: {"description": "connected (or, with error=wrong_jira_user added, approved by another JIRA account than "
                         "expected); redirect to the return_url given at start"},
    **error_responses(400, 409), **_502}
QueryValue = Annotated[str | None, Query(max_length=500)]


def with_query(url: str, **params: str) -> str:
    """`url` with `params` added to its query (what it already carries is kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _may_return_to(caller: Caller, public_base_url: str, url: str) -> bool:
    # the service's own origin holds only its own pages (the dashboard): never an open redirect
    return origin_of(url) == origin_of(public_base_url) or allows(list(caller.tenant.allowed_origins or []), url)


def _bad_gateway(exc: connect.ConnectError) -> HTTPException:
    code = status.HTTP_422_UNPROCESSABLE_CONTENT if exc.refused else status.HTTP_502_BAD_GATEWAY
    return HTTPException(code, exc.message)


@router.post(
    "/api/v1/jira-instances/{instance_id}/oauth/start", response_model=OAuthStartOut,
    summary="Start connecting a user's JIRA account", responses={**error_responses(401, 403, 404, 409, 422), **_502},
    dependencies=[USER_SCOPED],
)
async def oauth_start(
    body: OAuthStartIn, instance: InstanceDep, session: SessionDep, caller: CallerDep, credentials: CredentialsDep,
    jira: JiraDep, settings: SettingsDep, egress: EgressDep,
) -> dict[str, Any]:
    """Returns the JIRA page where the user approves access, valid 10 minutes. OAuth 1.0a: a request token is fetched
    (callback `<PUBLIC_BASE_URL>/oauth/jira/callback`). OAuth 2.0: `<base_url>/rest/oauth2/latest/authorize` with a
    state and a PKCE (S256) challenge (redirect URL `<PUBLIC_BASE_URL>/oauth/jira2/callback`). Jira Cloud: Atlassian's
    `<ATLASSIAN_AUTH_URL>/authorize` for the service's 3LO app (callback `<PUBLIC_BASE_URL>/oauth/atlassian/callback`;
    without ATLASSIAN_CLIENT_ID and ATLASSIAN_CLIENT_SECRET: 422). An instance with personal access tokens answers 409.
    With `expected_jira_user` (on Cloud an accountId), the callback checks who approved.
    A user token starts its own user's connection only (another `user` → 403). A `return_url` may point to one of
    the tenant's `allowed_origins` or to this service's own pages (`PUBLIC_BASE_URL`, e.g. `/dashboard`)."""
    caller.require(body.user, field="user")
    if body.return_url is not None and not _may_return_to(caller, settings.public_base_url, body.return_url):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"return_url: {origin_of(body.return_url)} is not one of the tenant's allowed_origins "
                            "(PATCH /api/v1/tenant)")
    if instance.auth == AuthKind.PAT:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"JIRA instance {instance.name!r} connects users with personal access tokens: "
                            f"{connect.connect_hint(instance, body.user)}")
    if instance.auth == AuthKind.ATLASSIAN:
        try:
            # the callback's code exchange and site look-up would be refused
            await egress.check_base_url(settings.atlassian_auth_url)
            await egress.check_base_url(settings.atlassian_api_url)
            url = await connect_atlassian.start(session, credentials, instance=instance, user=body.user,
                                                return_url=body.return_url,
                                                expected_jira_user=body.expected_jira_user)
        except EgressRefused as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from None
        except connect_atlassian.AppNotConfigured as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from None
        await session.commit()
        return {"authorize_url": url}
    if instance.auth == AuthKind.OAUTH2:
        try:
            await egress.check_base_url(instance.base_url)  # the callback's code exchange would be refused
        except EgressRefused as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.message) from None
        url = await connect_oauth2.start(session, credentials, instance=instance, user=body.user,
                                         return_url=body.return_url, expected_jira_user=body.expected_jira_user)
        await session.commit()
        return {"authorize_url": url}
    try:
        url = await connect.start(session, credentials, jira, instance=instance, user=body.user,
                                  return_url=body.return_url, public_base_url=settings.public_base_url,
                                  expected_jira_user=body.expected_jira_user)
    except connect.ConnectError as exc:
        await session.commit()  # keep the audit rows of the failed attempt
        raise _bad_gateway(exc) from None
    await session.commit()
    return {"authorize_url": url}


async def _answer(uow: UnitOfWork, token: str, kind: AuthKind,
                  finish: Callable[[OAuthRequestRow], Awaitable[connect.CallbackResult]]) -> Response:
    """Claim the authorization once, run `finish(request)` and answer as section 4 says."""
    try:
        request = await connect.claim_request(uow.session, token, kind)
    except connect.InvalidRequestToken as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    await uow.commit()  # single use from now on, whatever happens next
    try:
        result = await finish(request)
    except connect.InvalidRequestToken as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    except connect_oauth2.CodeRefused as exc:
        await uow.commit()  # keep the audit rows of the refused exchange
        raise HTTPException(status.HTTP_400_BAD_REQUEST, exc.message) from None
    except connect.ConnectError as exc:
        await uow.commit()  # keep the audit rows of the failed exchange
        raise _bad_gateway(exc) from None
    except connect.WrongJiraUser as exc:
        await uow.commit()  # the audit row says who approved
        if request.return_url:
            return RedirectResponse(with_query(request.return_url, error="wrong_jira_user"),
                                    status_code=status.HTTP_303_SEE_OTHER)
        raise HTTPException(status.HTTP_409_CONFLICT, exc.message) from None
    await uow.commit()  # the resumed entries' pending in the feed, then their pushes
    if result.status == "connected" and result.return_url:
        return RedirectResponse(result.return_url, status_code=status.HTTP_303_SEE_OTHER)
    body = OAuthCallbackOut(status=result.status,  # type: ignore[arg-type]
                            user=result.user, jira_instance=result.jira_instance, jira_username=result.jira_username,
                            reason=result.reason)
    return JSONResponse(body.model_dump(mode="json", exclude={"reason"} if result.reason is None else None))


@router.get(connect.CALLBACK_PATH, response_model=OAuthCallbackOut, summary="JIRA's OAuth 1.0a callback (no API key)",
            responses=_CALLBACK_ANSWERS)
async def oauth_callback(
    uow: UnitOfWorkDep, credentials: CredentialsDep, jira: JiraDep, oauth_token: QueryValue = None,
    oauth_verifier: QueryValue = None,
) -> Response:
    """Exchanges the approved request token for an access token (stored encrypted), or records a denial.
    An unknown, used or expired `oauth_token` is 400."""
    if not oauth_token:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "oauth_token is missing: start the connection again")
    if not oauth_verifier:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "oauth_verifier is missing: start the connection again")
    return await _answer(uow, oauth_token, AuthKind.OAUTH1, lambda request: connect.complete(
        uow, credentials, jira, request=request, verifier=oauth_verifier))


@router.get(OAUTH2_CALLBACK_PATH, response_model=OAuthCallbackOut,
            summary="JIRA's OAuth 2.0 callback (Data Center; no API key)", responses=_CALLBACK_ANSWERS)
async def oauth2_callback(
    uow: UnitOfWorkDep, credentials: CredentialsDep, jira: JiraDep, state: QueryValue = None, code: QueryValue = None,
    error: QueryValue = None, error_description: QueryValue = None,
) -> Response:
    """Exchanges the authorization code, with the PKCE verifier, for an access and a refresh token (stored
    encrypted), or records a denial (`error=access_denied`). An unknown, used or expired `state` is 400, and so is a
    code JIRA refuses (PKCE mismatch, used, expired): nothing is stored."""
    if not state:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "state is missing: start the connection again")
    if not code and not error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "code is missing: start the connection again")
    return await _answer(uow, state, AuthKind.OAUTH2, lambda request: connect_oauth2.complete(
        uow, credentials, jira, request=request, code=code, error=error, error_description=error_description))


@router.get(ATLASSIAN_CALLBACK_PATH, response_model=OAuthCallbackOut,
            summary="Atlassian's 3LO callback (Jira Cloud; no API key)", responses=_CALLBACK_ANSWERS)
async def atlassian_callback(
    uow: UnitOfWorkDep, credentials: CredentialsDep, jira: JiraDep, state: QueryValue = None, code: QueryValue = None,
    error: QueryValue = None, error_description: QueryValue = None,
) -> Response:
    """Exchanges the code for an access and a refresh token (stored encrypted), finds the instance's site among
    those the consent reaches (its `cloud_id`), or records a denial: `error=access_denied`, or an Atlassian account
    that cannot reach the site (`denied`, with the reason). An unknown, used or expired `state` is 400, and so is a
    code Atlassian refuses: nothing is stored."""
    if not state:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "state is missing: start the connection again")
    if not code and not error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "code is missing: start the connection again")
    return await _answer(uow, state, AuthKind.ATLASSIAN, lambda request: connect_atlassian.complete(
        uow, credentials, jira, request=request, code=code, error=error, error_description=error_description))
