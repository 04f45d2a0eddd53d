"""Per-request processing shared by REST and OAuth endpoints.

Order: instance lookup -> rate limit -> fault injection (latency, hang, drop, 5xx)
-> OAuth verification -> handler -> after-write faults -> headers + request log.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from .instance import SimInstance
from .oauth import OAuthProblem, Verified, collect_oauth_params, problem_headers_and_body, verify_request
from .observe import RequestRecord
from .ratelimit import rate_limit_headers
from .render import error_body
from .simulator import Simulator
from .state import User

DROP_FLAG = "jirasim.drop"
NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."


class ApiError(Exception):
    """A JIRA-style error response (``{"errorMessages": [...], "errors": {...}}``)."""

    def __init__(
        self,
        status: int,
        messages: list[str] | None = None,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status}: {messages or errors}")
        self.status = status
        self.body = error_body(messages, errors)
        self.headers = headers or {}

    def response(self) -> Response:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


@dataclass
class Ctx:
    """What a handler gets: the request, its instance and the authenticated user."""

    request: Request
    sim: Simulator
    inst: SimInstance
    base: str
    url: str
    body: bytes
    user: User | None = None
    verified: Verified | None = None

    @property
    def path_params(self) -> dict[str, Any]:
        return dict(self.request.path_params)

    def verify(self, token_kind: str | None, params: dict[str, str] | None = None) -> Verified:
        """Check this request's OAuth 1.0a signature (raises OAuthProblem); `token_kind` as in verify_request."""
        headers = self.request.headers
        return verify_request(
            self.inst.state,
            method=self.request.method,
            url=self.url,
            authorization=headers.get("authorization"),
            content_type=headers.get("content-type"),
            body=self.body,
            token_kind=token_kind,
            params=params,
        )

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.request.query_params.get(name, default)

    def json(self) -> Any:
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, [f"Unexpected character in request body: {exc}"]) from exc

    def require_user(self) -> User:
        if self.user is None:
            raise ApiError(401, [NOT_AUTHENTICATED])
        return self.user


Handler = Callable[[Ctx], Awaitable[Response]]


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str  # below the context path, e.g. "/rest/api/2/myself"
    handler: Handler
    auth: str = "required"  # required | optional | none (handler verifies itself)
    write: bool = False
    issue_param: str | None = None
    json_body: bool = False  # JSON request body expected (415 otherwise, like Jersey)


def client_url(request: Request) -> str:
    """The absolute URL as the client used it (what it signed)."""
    scope = request.scope
    scheme = scope.get("scheme", "http")
    host = request.headers.get("host")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else str(raw_path)
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def instance_base(request: Request, context_path: str) -> str:
    scheme = request.scope.get("scheme", "http")
    host = request.headers.get("host") or "127.0.0.1"
    return f"{scheme}://{host}{context_path}"


def request_drop(request: Request) -> Response:
    """Ask the outer ASGI wrapper to drop the connection without any response."""
    flag = request.scope.get(DROP_FLAG)
    if isinstance(flag, dict):
        flag["drop"] = True
    return Response(status_code=599)


def fault_response(status: int) -> Response:
    if status == 500:
        return JSONResponse(error_body(["Internal server error"]), status_code=500)
    reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}.get(status, "Server Error")
    return HTMLResponse(
        f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>",
        status_code=status,
    )


def oauth_problem_response(problem: OAuthProblem, base: str) -> Response:
    headers, body = problem_headers_and_body(problem, base)
    return PlainTextResponse(body, status_code=401, headers=headers, media_type="application/x-www-form-urlencoded")


async def authenticate(ctx: Ctx, spec: RouteSpec) -> None:
    if spec.auth == "none":
        return
    request = ctx.request
    authorization = request.headers.get("authorization")
    content_type = request.headers.get("content-type")
    params = collect_oauth_params(ctx.url, authorization, content_type, ctx.body)
    if params is None:
        if spec.auth == "required":
            raise ApiError(
                401,
                [NOT_AUTHENTICATED],
                headers={"WWW-Authenticate": f'OAuth realm="{ctx.base}"'},
            )
        return
    verified = ctx.verify("access", params)
    assert verified.access_token is not None
    user = ctx.inst.state.users.get(verified.access_token.user)
    if user is None or not user.active:
        raise OAuthProblem("token_rejected", "user of the access token is not active")
    ctx.verified = verified
    ctx.user = user


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";")[0].strip().lower() == "application/json"


def _issue_key(inst: SimInstance, spec: RouteSpec, request: Request) -> str | None:
    if spec.issue_param is None:
        return None
    raw = str(request.path_params.get(spec.issue_param, ""))
    issue = inst.state.find_issue(raw)
    return issue.key if issue is not None else raw or None


async def run_route(spec: RouteSpec, request: Request) -> Response:
    sim: Simulator = request.app.state.sim
    inst = sim.get(str(request.path_params.get("ctx", "")))
    if inst is None:
        return PlainTextResponse("Not Found", status_code=404)
    wall = time.time()
    start = time.monotonic()
    decision = inst.limiter.take()
    sim.observer.arrival(inst.name, start, decision.allowed)
    issue_key = _issue_key(inst, spec, request)
    base = instance_base(request, inst.context_path)
    ctx = Ctx(request=request, sim=sim, inst=inst, base=base, url=client_url(request), body=b"")
    problem: str | None = None
    fault: str | None = None
    dropped = False

    if not decision.allowed:
        response: Response = JSONResponse(error_body(["Rate limit exceeded."]), status_code=429)
    else:
        if spec.write:
            sim.observer.write_started(inst.name, issue_key)
        try:
            response, problem, fault, dropped = await _process(ctx, spec)
        finally:
            if spec.write:
                sim.observer.write_finished(inst.name, issue_key)

    response.headers.update(rate_limit_headers(decision, inst.rate_limit.retry_after))
    response.headers["X-AUSERNAME"] = ctx.user.name if ctx.user else "anonymous"
    sim.observer.record(
        RequestRecord(
            time=wall,
            instance=inst.name,
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            status=0 if dropped else response.status_code,
            user=ctx.user.name if ctx.user else None,
            duration_ms=round((time.monotonic() - start) * 1000.0, 3),
            write=spec.write,
            issue_key=issue_key,
            oauth_problem=problem,
            fault=fault,
            retry_after=int(response.headers["Retry-After"]) if "Retry-After" in response.headers else None,
        )
    )
    return response


async def _process(ctx: Ctx, spec: RouteSpec) -> tuple[Response, str | None, str | None, bool]:
    """Returns (response, oauth problem, injected fault, dropped)."""
    request = ctx.request
    inst = ctx.inst
    path = request.url.path
    action = inst.faults.before(request.method, path, spec.write)
    if action.latency_s > 0:
        await asyncio.sleep(action.latency_s)
    if action.hang_s is not None:
        await ctx.sim.pause(action.hang_s)
        return request_drop(request), None, "hang", True
    if action.drop:
        return request_drop(request), None, "drop", True
    if action.error_status is not None:
        return fault_response(action.error_status), None, f"error_{action.error_status}", False

    fault = "latency" if action.kind == "latency" else None
    ctx.body = await request.body()
    try:
        await authenticate(ctx, spec)
        if spec.json_body and not _is_json(request.headers.get("content-type")):
            raise ApiError(415, ["Unsupported Media Type: send the body as application/json."])
        response = await spec.handler(ctx)
    except OAuthProblem as exc:
        return oauth_problem_response(exc, ctx.base), exc.problem, fault, False
    except ApiError as exc:
        return exc.response(), None, fault, False

    if spec.write and 200 <= response.status_code < 300:
        post = inst.faults.after_write(request.method, path)
        if post is not None:
            if post.mode == "502":
                return fault_response(502), None, "fail_after_write_502", False
            if post.mode == "timeout":
                await ctx.sim.pause(post.seconds)
                return request_drop(request), None, "fail_after_write_timeout", True
            return request_drop(request), None, "fail_after_write_drop", True
    return response, None, fault, False
