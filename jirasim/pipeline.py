"""Per-request processing shared by every simulated endpoint (DC instances, Cloud sites, Atlassian's auth server).

Order: admission (rate limits) -> fault injection (latency, hang, drop, 5xx) -> authentication -> handler
-> after-write faults -> settlement (Cloud points) -> headers + request log.

What differs between a Data Center instance, a Cloud site and the authorization server (how a caller
authenticates, which limits apply, which identity header answers carry) lives in a `Gate` (see gates.py);
the order above is the same for all of them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from .cloud_limits import reset_header
from .faults import FaultInjector, FaultRule
from .instance import SimInstance
from .oauth import OAuthProblem, Verified, problem_headers_and_body, verify_request
from .observe import RequestRecord
from .render import error_body
from .state import User

if TYPE_CHECKING:
    from .simulator import Simulator

DROP_FLAG = "jirasim.drop"
NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
DATACENTER = "datacenter"
CLOUD = "cloud"


class ApiError(Exception):
    """A JIRA-style error response (``{"errorMessages": [...], "errors": {...}}``) or any other JSON body."""

    def __init__(
        self,
        status: int,
        messages: list[str] | None = None,
        errors: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status}: {messages or errors or body}")
        self.status = status
        self.body = body if body is not None else error_body(messages, errors)
        self.headers = headers or {}

    def response(self) -> Response:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


class Target(Protocol):
    """What a request is addressed to: a simulated instance/site, or Atlassian's authorization server."""

    name: str
    faults: FaultInjector


@dataclass
class Ctx:
    """What a handler gets: the request, its target and (once authenticated) the caller."""

    request: Request
    sim: Simulator
    target: Target
    base: str
    url: str
    body: bytes = b""
    issue_key: str | None = None
    user: User | None = None
    verified: Verified | None = None
    auth: str | None = None  # how the caller authenticated: oauth1 | pat | oauth2 | 3lo | client
    client: str | None = None  # consumer key, OAuth 2.0 client id or PAT id
    problem: str | None = None  # why authentication failed (request log)
    objects: int | None = None  # objects a read returned (Cloud points); None: 1 on success, 0 otherwise
    points: int | None = None  # Cloud points charged for this request
    limit_reason: str | None = None  # which limit refused it (Cloud RateLimit-Reason)

    @property
    def inst(self) -> SimInstance:
        if not isinstance(self.target, SimInstance):
            raise TypeError(f"{self.target.name} is not a JIRA instance")
        return self.target

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
    deployments: tuple[str, ...] = (DATACENTER, CLOUD)  # where this resource exists
    scope: str | None = None  # Cloud OAuth scope; default read:jira-work, or write:jira-work for writes

    @property
    def cloud_scope(self) -> str:
        if self.scope is not None:
            return self.scope
        return "write:jira-work" if self.write else "read:jira-work"


@dataclass
class Admission:
    """A gate's answer before anything else runs: let the request through, or refuse it (a 429)."""

    allowed: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    refusal: Response | None = None


class Gate(Protocol):
    """How one kind of target admits, authenticates, charges and labels requests."""

    def admit(self, ctx: Ctx, spec: RouteSpec) -> Admission: ...

    async def authenticate(self, ctx: Ctx, spec: RouteSpec) -> None: ...

    def settle(self, ctx: Ctx, spec: RouteSpec, response: Response, dropped: bool) -> None: ...

    def identity_headers(self, ctx: Ctx) -> dict[str, str]: ...


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


def server_base(request: Request, path: str) -> str:
    """``scheme://host`` as the client addressed this server, followed by ``path``."""
    scheme = request.scope.get("scheme", "http")
    host = request.headers.get("host") or "127.0.0.1"
    return f"{scheme}://{host}{path}"


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


def rate_limit_response(rule: FaultRule) -> Response:
    """A scripted 429: Data Center's (``Retry-After``), or Jira Cloud's with ``RateLimit-Reason`` and a reset."""
    headers = {"Retry-After": str(rule.retry_after), "X-RateLimit-Remaining": "0"}
    if rule.reason is not None:
        headers["RateLimit-Reason"] = rule.reason
        headers["X-RateLimit-Limit"] = "1"
        headers["X-RateLimit-Reset"] = reset_header(time.time() + rule.retry_after)
    message = f"Rate limit exceeded ({rule.reason})." if rule.reason else "Rate limit exceeded."
    return JSONResponse(error_body([message]), status_code=429, headers=headers)


def oauth_problem_response(problem: OAuthProblem, base: str) -> Response:
    headers, body = problem_headers_and_body(problem, base)
    return PlainTextResponse(body, status_code=401, headers=headers, media_type="application/x-www-form-urlencoded")


def _is_json(content_type: str | None) -> bool:
    return content_type is not None and content_type.split(";")[0].strip().lower() == "application/json"


def _issue_key(target: Target, spec: RouteSpec, request: Request) -> str | None:
    if spec.issue_param is None or not isinstance(target, SimInstance):
        return None
    raw = str(request.path_params.get(spec.issue_param, ""))
    issue = target.state.find_issue(raw)
    return issue.key if issue is not None else raw or None


async def run_route(spec: RouteSpec, request: Request, target: Target, gate: Gate, base: str) -> Response:
    sim: Simulator = request.app.state.sim
    wall = time.time()
    start = time.monotonic()
    ctx = Ctx(request=request, sim=sim, target=target, base=base, url=client_url(request))
    ctx.issue_key = _issue_key(target, spec, request)
    admission = gate.admit(ctx, spec)
    sim.observer.arrival(target.name, start, admission.allowed)
    problem: str | None = None
    fault: str | None = None
    dropped = False

    if not admission.allowed:
        assert admission.refusal is not None
        response: Response = admission.refusal
    else:
        if spec.write:
            sim.observer.write_started(target.name, ctx.issue_key)
        try:
            response, problem, fault, dropped = await _process(ctx, spec, gate)
        finally:
            if spec.write:
                sim.observer.write_finished(target.name, ctx.issue_key)
        gate.settle(ctx, spec, response, dropped)

    for name, value in admission.headers.items():
        response.headers.setdefault(name, value)  # a scripted 429 keeps its own limit headers
    response.headers.update(gate.identity_headers(ctx))
    sim.observer.record(
        RequestRecord(
            time=wall,
            instance=target.name,
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            status=0 if dropped else response.status_code,
            user=ctx.user.name if ctx.user else None,
            duration_ms=round((time.monotonic() - start) * 1000.0, 3),
            write=spec.write,
            issue_key=ctx.issue_key,
            oauth_problem=problem or ctx.problem,
            fault=fault,
            retry_after=int(response.headers["Retry-After"]) if "Retry-After" in response.headers else None,
            auth=ctx.auth,
            client=ctx.client,
            points=ctx.points,
            limit_reason=ctx.limit_reason,
        )
    )
    return response


async def _process(ctx: Ctx, spec: RouteSpec, gate: Gate) -> tuple[Response, str | None, str | None, bool]:
    """Returns (response, oauth problem, injected fault, dropped)."""
    request = ctx.request
    target = ctx.target
    path = request.url.path
    action = target.faults.before(request.method, path, spec.write)
    if action.latency_s > 0:
        await asyncio.sleep(action.latency_s)
    if action.hold_s is not None:
        await ctx.sim.pause(action.hold_s, until=target.faults.released)
    if action.hang_s is not None:
        await ctx.sim.pause(action.hang_s)
        return request_drop(request), None, "hang", True
    if action.drop:
        return request_drop(request), None, "drop", True
    if action.error_status is not None:
        return fault_response(action.error_status), None, f"error_{action.error_status}", False
    if action.rate_limit is not None:
        ctx.limit_reason = action.rate_limit.reason
        return rate_limit_response(action.rate_limit), None, "rate_limit", False

    fault = action.kind if action.kind in ("latency", "hold") else None
    try:
        ctx.body = await request.body()
    except ClientDisconnect:  # the client gave up (e.g. its timeout ran out during an injected latency): no answer
        return request_drop(request), None, fault, True
    try:
        await gate.authenticate(ctx, spec)
        if spec.json_body and not _is_json(request.headers.get("content-type")):
            raise ApiError(415, ["Unsupported Media Type: send the body as application/json."])
        response = await spec.handler(ctx)
    except OAuthProblem as exc:
        return oauth_problem_response(exc, ctx.base), exc.problem, fault, False
    except ApiError as exc:
        return exc.response(), None, fault, False

    if spec.write and 200 <= response.status_code < 300:
        post = target.faults.after_write(request.method, path)
        if post is not None:
            if post.mode == "502":
                return fault_response(502), None, "fail_after_write_502", False
            if post.mode == "timeout":
                await ctx.sim.pause(post.seconds)
                return request_drop(request), None, "fail_after_write_timeout", True
            return request_drop(request), None, "fail_after_write_drop", True
    return response, None, fault, False
