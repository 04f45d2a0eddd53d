"""Atlassian's authorization server (``<auth_path>/authorize``, ``<auth_path>/oauth/token``) and the gateway's
``<api_path>/oauth/token/accessible-resources``.

``authorize`` follows ``authorize_mode``: ``approve`` redirects at once (as ``approve_as``, for
``approve_sites``), ``deny`` redirects with ``error=access_denied``, ``manual`` shows an Allow/Deny page with
``user`` and ``sites`` fields that POSTs every parameter back to ``authorize``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse, Response

from .atlassian import Account, AtlassianAuth, ConsentRequest
from .consent import consent_page, error_page, redirect_back
from .gates import UNAUTHORIZED
from .oauth2 import OAuth2Error, RedirectableError
from .pipeline import ApiError, Ctx, RouteSpec

_CONSENT_FIELDS = ("audience", "client_id", "scope", "redirect_uri", "state", "response_type", "prompt")


def _auth(ctx: Ctx) -> AtlassianAuth:
    return ctx.sim.atlassian


def _as_account(ctx: Ctx, account_id: str) -> None:
    """Name the account in the request log (by the simulator user name it has on some site)."""
    for site in _auth(ctx).sites():
        user = site.state.user_by_account(account_id)
        if user is not None:
            ctx.user = user
            return


def _checked(ctx: Ctx, params: dict[str, str]) -> ConsentRequest | Response:
    try:
        return _auth(ctx).check_consent_request(params)
    except ValueError as exc:
        return error_page("Something went wrong", str(exc))
    except RedirectableError as exc:
        answer = {"error": exc.error, "error_description": exc.description, "state": exc.state}
        return redirect_back(exc.redirect_uri, answer)


def _finish(ctx: Ctx, request: ConsentRequest, account: Account | None, sites: list[str] | None) -> Response:
    auth = _auth(ctx)
    if account is None:
        return error_page("Something went wrong", "No such Atlassian account.")
    code = auth.issue_code(request, account, auth.consent_sites(account.account_id, sites))
    _as_account(ctx, account.account_id)
    return redirect_back(request.redirect_uri, {"code": code.code, "state": request.state})


def _deny(request: ConsentRequest) -> Response:
    answer = {"error": "access_denied", "error_description": "The user denied access.", "state": request.state}
    return redirect_back(request.redirect_uri, answer)


async def authorize(ctx: Ctx) -> Response:
    auth = _auth(ctx)
    params = dict(ctx.request.query_params)
    checked = _checked(ctx, params)
    if isinstance(checked, Response):
        return checked
    settings = auth.settings
    if settings.authorize_mode == "approve":
        sites = list(settings.approve_sites) if settings.approve_sites is not None else None
        return _finish(ctx, checked, auth.default_approver(), sites)
    if settings.authorize_mode == "deny":
        auth.count("denials")
        return _deny(checked)
    approver = auth.default_approver()
    mine = auth.sites_of(approver.account_id) if approver else []
    return consent_page(
        title="Atlassian - Authorize app",
        heading=f"{checked.app.name} is requesting access to your Atlassian account",
        action=f"{ctx.base}/authorize",
        hidden={name: params[name] for name in _CONSENT_FIELDS if name in params},
        user=approver.name if approver else "",
        details=f"Scopes: {' '.join(checked.scopes)}",
        inputs={"sites": ",".join(s.name for s in mine)},
    )


async def authorize_submit(ctx: Ctx) -> Response:
    form = dict(parse_qsl(ctx.body.decode("utf-8", "replace")))
    checked = _checked(ctx, form)
    if isinstance(checked, Response):
        return checked
    action = form.get("action", "")
    if action == "deny":
        _auth(ctx).count("denials")
        return _deny(checked)
    if action != "allow":
        return error_page("Something went wrong", "action must be allow or deny")
    sites = form["sites"].split(",") if "sites" in form else None
    return _finish(ctx, checked, _auth(ctx).account(form.get("user")), sites)


def _token_params(ctx: Ctx) -> dict[str, Any]:
    content_type = (ctx.request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(ctx.body.decode("utf-8", "replace")))
    try:
        data = json.loads(ctx.body or b"null")
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise OAuth2Error(400, "invalid_request", "Send a JSON object (Content-Type: application/json).")
    return data


async def token(ctx: Ctx) -> Response:
    auth = _auth(ctx)
    ctx.auth = "client"
    try:
        params = _token_params(ctx)
        ctx.client = str(params.get("client_id") or "") or None
        grant_type = params.get("grant_type")
        if grant_type == "authorization_code":
            answer = auth.exchange_code(params)
        elif grant_type == "refresh_token":
            answer = auth.refresh(params)
        else:
            raise OAuth2Error(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
    except OAuth2Error as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers={"Cache-Control": "no-store"})
    access = auth.peek(answer["access_token"])
    if access is not None:
        _as_account(ctx, access.account_id)
    return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def accessible_resources(ctx: Ctx) -> Response:
    auth = _auth(ctx)
    header = ctx.request.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    access, problem = auth.check_access(value.strip() if scheme.lower() == "bearer" else None)
    if access is None:
        ctx.problem = problem
        raise ApiError(401, body=UNAUTHORIZED)
    ctx.auth, ctx.client = "3lo", access.client_id
    _as_account(ctx, access.account_id)
    return JSONResponse(auth.accessible_resources(access))


AUTH_ROUTES: list[RouteSpec] = [
    RouteSpec("GET", "/authorize", authorize, auth="none", deployments=()),
    RouteSpec("POST", "/authorize", authorize_submit, auth="none", deployments=()),
    # a write: it changes what the server holds, so "rotated, then the answer was lost" faults apply to it
    RouteSpec("POST", "/oauth/token", token, auth="none", write=True, deployments=()),
]
GATEWAY_ROUTES: list[RouteSpec] = [
    RouteSpec("GET", "/oauth/token/accessible-resources", accessible_resources, auth="none", deployments=()),
]
