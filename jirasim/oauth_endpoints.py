"""The OAuth 1.0a dance endpoints under ``{ctx}/plugins/servlet/oauth/``."""

from __future__ import annotations

import html
from urllib.parse import parse_qsl, urlencode

from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from .consent import consent_page, error_page
from .oauth import (
    authorize_request_token,
    callback_url,
    deny_request_token,
    exchange_request_token,
    issue_request_token,
)
from .pipeline import DATACENTER, Ctx, RouteSpec
from .state import RequestToken

OAUTH = "/plugins/servlet/oauth"
FORM = "application/x-www-form-urlencoded"


def _form(params: dict[str, str]) -> Response:
    return PlainTextResponse(urlencode(params), media_type=FORM)


async def request_token(ctx: Ctx) -> Response:
    verified = ctx.verify(None)
    token = issue_request_token(ctx.inst.state, verified.consumer, verified.params.get("oauth_callback", "oob"))
    return _form(
        {
            "oauth_token": token.token,
            "oauth_token_secret": token.secret,
            "oauth_callback_confirmed": "true",
        }
    )


async def access_token(ctx: Ctx) -> Response:
    verified = ctx.verify("request")
    assert verified.request_token is not None
    access = exchange_request_token(ctx.inst.state, verified.request_token, verified.params.get("oauth_verifier"))
    return _form({"oauth_token": access.token, "oauth_token_secret": access.secret})


def _error_page(message: str) -> Response:
    return error_page("OAuth error", message)


def _finish(ctx: Ctx, token: RequestToken, user: str | None, allow: bool) -> Response:
    if allow:
        if user is None or user not in ctx.inst.state.users:
            return _error_page(f"Unknown user {user!r}")
        verifier = authorize_request_token(ctx.inst.state, token, user)
    else:
        deny_request_token(token)
        verifier = "denied"
    if token.callback == "oob":
        return HTMLResponse(
            "<html><body><h1>Access "
            + ("approved" if allow else "denied")
            + f"</h1><p>Verification code: <code id='verifier'>{html.escape(verifier)}</code></p>"
            "</body></html>"
        )
    target = callback_url(token.callback, {"oauth_token": token.token, "oauth_verifier": verifier})
    return RedirectResponse(target, status_code=302)


def _pending_token(ctx: Ctx, token_value: str | None) -> RequestToken | None:
    token = ctx.inst.state.request_tokens.get(token_value or "")
    if token is None or token.status != "new":
        return None
    return token


async def authorize(ctx: Ctx) -> Response:
    token = _pending_token(ctx, ctx.query("oauth_token"))
    if token is None:
        return _error_page("The request token is invalid, already used or expired.")
    mode = ctx.inst.authorize_mode
    if mode == "approve":
        return _finish(ctx, token, ctx.inst.default_approver(), allow=True)
    if mode == "deny":
        return _finish(ctx, token, None, allow=False)
    consumer = ctx.inst.state.consumers.get(token.consumer_key)
    consumer_name = consumer.name if consumer else token.consumer_key
    return consent_page(
        title=f"Welcome to JIRA ({ctx.inst.name})",
        heading=f"{consumer_name} would like to access your JIRA data",
        action=f"{ctx.base}{OAUTH}/authorize",
        hidden={"oauth_token": token.token},
        user=ctx.inst.default_approver() or "",
    )


async def authorize_submit(ctx: Ctx) -> Response:
    form = dict(parse_qsl(ctx.body.decode("utf-8", "replace")))
    token = _pending_token(ctx, str(form.get("oauth_token") or ""))
    if token is None:
        return _error_page("The request token is invalid, already used or expired.")
    action = str(form.get("action") or "")
    if action not in ("allow", "deny"):
        return _error_page("action must be allow or deny")
    user = str(form.get("user") or "") or None
    return _finish(ctx, token, user, allow=action == "allow")


ROUTES: list[RouteSpec] = [
    RouteSpec("POST", f"{OAUTH}/request-token", request_token, auth="none", deployments=(DATACENTER,)),
    RouteSpec("GET", f"{OAUTH}/authorize", authorize, auth="none", deployments=(DATACENTER,)),
    RouteSpec("POST", f"{OAUTH}/authorize", authorize_submit, auth="none", deployments=(DATACENTER,)),
    RouteSpec("POST", f"{OAUTH}/access-token", access_token, auth="none", deployments=(DATACENTER,)),
]
