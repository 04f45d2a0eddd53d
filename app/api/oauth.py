"""Connecting a user's JIRA account, OAuth 1.0a (CONTRACT section 4): start and callback.

The callback carries no API key: it is bound to the single-use request token that `start` fetched.
After a connect it answers 303 to the `return_url` given at start, or 200 with JSON when none was given;
a denial always answers 200 `{"status": "denied", …}`. JIRA failures are 502 with a readable message. An approval
by another JIRA account than `expected_jira_user` stores nothing: 303 to the `return_url` with
`error=wrong_jira_user` added, or 409 without one.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import JSONResponse, RedirectResponse, Response

from app.api.deps import CredentialsDep, InstanceDep, JiraDep, SessionDep, SettingsDep, TenantDep, UnitOfWorkDep
from app.api.schemas.common import ErrorOut, error_responses
from app.api.schemas.jira import OAuthCallbackOut, OAuthStartIn, OAuthStartOut
from app.domain.origins import allows, origin_of
from app.services import connect

router = APIRouter(tags=["connections"])

_502: dict[int | str, dict[str, Any]] = {
    502: {"description": "JIRA could not be reached or refused the OAuth step", "model": ErrorOut}}


def with_query(url: str, **params: str) -> str:
    """`url` with `params` added to its query (what it already carries is kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _bad_gateway(exc: connect.ConnectError) -> HTTPException:
    code = status.HTTP_422_UNPROCESSABLE_CONTENT if exc.refused else status.HTTP_502_BAD_GATEWAY
    return HTTPException(code, exc.message)


@router.post(
    "/api/v1/jira-instances/{instance_id}/oauth/start", response_model=OAuthStartOut,
    summary="Start connecting a user's JIRA account", responses={**error_responses(401, 404, 422), **_502},
)
async def oauth_start(
    body: OAuthStartIn, instance: InstanceDep, session: SessionDep, tenant: TenantDep, credentials: CredentialsDep,
    jira: JiraDep, settings: SettingsDep,
) -> dict[str, Any]:
    """Fetches a request token (callback `<PUBLIC_BASE_URL>/oauth/jira/callback`, valid 10 minutes) and returns
    the JIRA page where the user approves access. With `expected_jira_user`, the callback checks who approved."""
    if body.return_url is not None and not allows(list(tenant.allowed_origins or []), body.return_url):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"return_url: {origin_of(body.return_url)} is not one of the tenant's allowed_origins "
                            "(PATCH /api/v1/tenant)")
    try:
        url = await connect.start(session, credentials, jira, instance=instance, user=body.user,
                                  return_url=body.return_url, public_base_url=settings.public_base_url,
                                  expected_jira_user=body.expected_jira_user)
    except connect.ConnectError as exc:
        await session.commit()  # keep the audit rows of the failed attempt
        raise _bad_gateway(exc) from None
    await session.commit()
    return {"authorize_url": url}


@router.get(
    connect.CALLBACK_PATH, response_model=OAuthCallbackOut, summary="JIRA's OAuth callback (no API key)",
    responses={303: {"description": "connected (or, with error=wrong_jira_user added, approved by another JIRA "
                                    "account than expected); redirect to the return_url given at start"},
               **error_responses(400, 409), **_502},
)
async def oauth_callback(
    uow: UnitOfWorkDep, credentials: CredentialsDep, jira: JiraDep,
    oauth_token: Annotated[str | None, Query(max_length=500)] = None,
    oauth_verifier: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """Exchanges the approved request token for an access token (stored encrypted), or records a denial.
    An unknown, used or expired `oauth_token` is 400."""
    if not oauth_token:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "oauth_token is missing: start the connection again")
    if not oauth_verifier:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "oauth_verifier is missing: start the connection again")
    try:
        request = await connect.claim_request(uow.session, oauth_token)
    except connect.InvalidRequestToken as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    await uow.commit()  # single use from now on, whatever happens next
    try:
        result = await connect.complete(uow, credentials, jira, request=request, verifier=oauth_verifier)
    except connect.InvalidRequestToken as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
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
                            user=result.user, jira_instance=result.jira_instance, jira_username=result.jira_username)
    return JSONResponse(body.model_dump(mode="json"))
