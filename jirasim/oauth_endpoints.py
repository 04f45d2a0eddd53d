"""The OAuth 1.0a dance endpoints under ``{ctx}/plugins/servlet/oauth/``."""

from __future__ import annotations

import html
from urllib.parse import parse_qsl, urlencode

from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from .oauth import (
    authorize_request_token,
    callback_url,
    deny_request_token,
    exchange_request_token,
    issue_request_token,
)
from .pipeline import Ctx, RouteSpec
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


def _error_page(message: str, status: int = 400) -> Response:
    return HTMLResponse(
        f"<html><body><h1>OAuth error</h1><p>{html.escape(message)}</p></body></html>",
        status_code=status,
    )


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
    default_user = ctx.inst.default_approver() or ""
    page = f"""<!DOCTYPE html>
<html><head><title>Welcome to JIRA ({html.escape(ctx.inst.name)})</title></head>
<body>
<h1>{html.escape(consumer_name)} would like to access your JIRA data</h1>
<form method="post" action="{html.escape(ctx.base)}{OAUTH}/authorize">
  <input type="hidden" name="oauth_token" value="{html.escape(token.token)}">
  <label>User <input type="text" name="user" value="{html.escape(default_user)}"></label>
  <button type="submit" name="action" value="allow" id="approve">Allow</button>
  <button type="submit" name="action" value="deny" id="deny">Deny</button>
</form>
</body></html>"""
    return HTMLResponse(page)


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
    RouteSpec("POST", f"{OAUTH}/request-token", request_token, auth="none"),
    RouteSpec("GET", f"{OAUTH}/authorize", authorize, auth="none"),
    RouteSpec("POST", f"{OAUTH}/authorize", authorize_submit, auth="none"),
    RouteSpec("POST", f"{OAUTH}/access-token", access_token, auth="none"),
]
