"""The Data Center OAuth 2.0 provider's endpoints under ``{ctx}/rest/oauth2/latest/``.

``authorize`` follows the instance's ``authorize_mode`` like the OAuth 1.0a dance: ``approve`` redirects at
once as ``approve_as``, ``deny`` redirects with ``error=access_denied``, ``manual`` shows an Allow/Deny page
with a user field (POSTed back to the same URL). ``token`` takes its parameters from the query string or a
form body, as JIRA does.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.responses import JSONResponse, Response

from .consent import consent_page, error_page, redirect_back
from .oauth2 import (
    AuthorizationRequest,
    OAuth2Error,
    RedirectableError,
    check_authorization,
    exchange_code,
    issue_code,
    refresh,
    token_answer,
)
from .pipeline import DATACENTER, Ctx, RouteSpec

OAUTH2 = "/rest/oauth2/latest"
_AUTHORIZE_FIELDS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)


def _error_page(message: str) -> Response:
    return error_page("OAuth 2.0 error", message)


def _finish(ctx: Ctx, request: AuthorizationRequest, user: str | None, allow: bool) -> Response:
    if not allow:
        return redirect_back(
            request.redirect_uri,
            {"error": "access_denied", "error_description": "The user denied access.", "state": request.state},
        )
    if user is None or user not in ctx.inst.state.users:
        return _error_page(f"Unknown user {user!r}")
    code = issue_code(ctx.inst.state, request, user, ctx.inst.config.oauth2.code_seconds)
    return redirect_back(request.redirect_uri, {"code": code.code, "state": request.state})


def _checked(ctx: Ctx, params: dict[str, str]) -> AuthorizationRequest | Response:
    try:
        return check_authorization(ctx.inst.state, params)
    except ValueError as exc:
        return _error_page(str(exc))
    except RedirectableError as exc:
        answer = {"error": exc.error, "error_description": exc.description, "state": exc.state}
        return redirect_back(exc.redirect_uri, answer)


async def authorize(ctx: Ctx) -> Response:
    params = dict(ctx.request.query_params)
    checked = _checked(ctx, params)
    if isinstance(checked, Response):
        return checked
    mode = ctx.inst.authorize_mode
    if mode == "approve":
        return _finish(ctx, checked, ctx.inst.default_approver(), allow=True)
    if mode == "deny":
        return _finish(ctx, checked, None, allow=False)
    return consent_page(
        title=f"Welcome to JIRA ({ctx.inst.name})",
        heading=f"{checked.client.name} wants to access your JIRA account",
        action=f"{ctx.base}{OAUTH2}/authorize",
        hidden={name: params[name] for name in _AUTHORIZE_FIELDS if params.get(name) is not None},
        user=ctx.inst.default_approver() or "",
        details=f"Permissions: {' '.join(checked.scopes)}",
    )


async def authorize_submit(ctx: Ctx) -> Response:
    form = dict(parse_qsl(ctx.body.decode("utf-8", "replace")))
    checked = _checked(ctx, form)
    if isinstance(checked, Response):
        return checked
    action = form.get("action", "")
    if action not in ("allow", "deny"):
        return _error_page("action must be allow or deny")
    return _finish(ctx, checked, form.get("user") or None, allow=action == "allow")


def _token_params(ctx: Ctx) -> dict[str, str]:
    params = dict(ctx.request.query_params)
    content_type = ctx.request.headers.get("content-type") or ""
    if "application/x-www-form-urlencoded" in content_type:
        params.update(parse_qsl(ctx.body.decode("utf-8", "replace")))
    return params


async def token(ctx: Ctx) -> Response:
    params = _token_params(ctx)
    ctx.client = params.get("client_id") or None
    ctx.auth = "client"
    grant_type = params.get("grant_type", "")
    state = ctx.inst.state
    try:
        if grant_type == "authorization_code":
            grant = exchange_code(state, params)
        elif grant_type == "refresh_token":
            grant = refresh(state, params)
        else:
            raise OAuth2Error(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
    except OAuth2Error as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers={"Cache-Control": "no-store"})
    ctx.user = state.users.get(grant.user)
    return JSONResponse(token_answer(grant), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


ROUTES: list[RouteSpec] = [
    RouteSpec("GET", f"{OAUTH2}/authorize", authorize, auth="none", deployments=(DATACENTER,)),
    RouteSpec("POST", f"{OAUTH2}/authorize", authorize_submit, auth="none", deployments=(DATACENTER,)),
    # a write: it changes what the instance holds, so "applied, then the answer was lost" faults apply to it
    RouteSpec("POST", f"{OAUTH2}/token", token, auth="none", write=True, deployments=(DATACENTER,)),
]
