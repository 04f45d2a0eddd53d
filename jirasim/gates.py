"""Gates: how each kind of target admits, authenticates, charges and labels a request (see pipeline.py)."""

from __future__ import annotations

import time

from starlette.responses import JSONResponse, Response

from .instance import CloudSite
from .oauth import OAuthProblem, collect_oauth_params
from .oauth2 import find_access, granted
from .pipeline import NOT_AUTHENTICATED, Admission, ApiError, Ctx, RouteSpec
from .ratelimit import rate_limit_headers
from .render import error_body

UNAUTHORIZED = {"code": 401, "message": "Unauthorized"}  # what Atlassian's gateway answers
SCOPE_MISMATCH = {"code": 401, "message": "Unauthorized; scope does not match"}

SCOPE_TOO_NARROW = "The OAuth 2.0 scope of this token does not allow this request."


def bearer_token(ctx: Ctx) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    authorization = ctx.request.headers.get("authorization") or ""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


class DataCenterGate:
    """JIRA Data Center: the instance's token bucket, then a Bearer token (personal access token or OAuth 2.0
    access token) or an OAuth 1.0a (RSA-SHA1) signature."""

    def admit(self, ctx: Ctx, spec: RouteSpec) -> Admission:
        inst = ctx.inst
        decision = inst.limiter.take()
        headers = rate_limit_headers(decision, inst.rate_limit.retry_after)
        if decision.allowed:
            return Admission(headers=headers)
        refusal = JSONResponse(error_body(["Rate limit exceeded."]), status_code=429)
        return Admission(allowed=False, headers=headers, refusal=refusal)

    async def authenticate(self, ctx: Ctx, spec: RouteSpec) -> None:
        if spec.auth == "none":
            return
        token = bearer_token(ctx)
        if token is not None:
            self._authenticate_bearer(ctx, spec, token)
            return
        request = ctx.request
        authorization = request.headers.get("authorization")
        params = collect_oauth_params(ctx.url, authorization, request.headers.get("content-type"), ctx.body)
        if params is None:
            if spec.auth == "required":
                raise ApiError(401, [NOT_AUTHENTICATED], headers={"WWW-Authenticate": f'OAuth realm="{ctx.base}"'})
            return
        verified = ctx.verify("access", params)
        assert verified.access_token is not None
        ctx.auth, ctx.client = "oauth1", verified.consumer.key
        user = ctx.inst.state.users.get(verified.access_token.user)
        if user is None or not user.active:
            raise OAuthProblem("token_rejected", "user of the access token is not active")
        ctx.verified = verified
        ctx.user = user

    def _authenticate_bearer(self, ctx: Ctx, spec: RouteSpec, token: str) -> None:
        state = ctx.inst.state
        pat = state.pats.get(token)
        problem = "token_unknown"
        if pat is not None:
            ctx.auth, ctx.client = "pat", f"pat:{pat.id}"
            now = time.time()
            if pat.revoked:
                problem = "token_revoked"
            elif pat.expires_at is not None and now > pat.expires_at:
                problem = "token_expired"
            else:
                pat.last_used = now
                self._as_user(ctx, pat.user)
                return
        else:
            grant, problem = find_access(state, token)
            if grant is not None:
                ctx.auth, ctx.client = "oauth2", grant.client_id
                self._as_user(ctx, grant.user)
                needed = "WRITE" if spec.write else "READ"
                if needed not in granted(grant.scopes):
                    raise ApiError(403, [SCOPE_TOO_NARROW])
                return
        ctx.problem = problem
        raise ApiError(401, [NOT_AUTHENTICATED], headers={"WWW-Authenticate": f'Bearer realm="{ctx.base}"'})

    @staticmethod
    def _as_user(ctx: Ctx, name: str) -> None:
        user = ctx.inst.state.users.get(name)
        if user is None or not user.active:
            ctx.problem = "user_inactive"
            raise ApiError(401, [NOT_AUTHENTICATED], headers={"WWW-Authenticate": f'Bearer realm="{ctx.base}"'})
        ctx.user = user

    def settle(self, ctx: Ctx, spec: RouteSpec, response: Response, dropped: bool) -> None:
        return None

    def identity_headers(self, ctx: Ctx) -> dict[str, str]:
        return {"X-AUSERNAME": ctx.user.name if ctx.user else "anonymous"}


class CloudGate:
    """Jira Cloud behind Atlassian's gateway: OAuth 2.0 (3LO) access tokens with scopes, the three Cloud
    limits, and points charged to the token's app."""

    @staticmethod
    def _site(ctx: Ctx) -> CloudSite:
        site = ctx.inst
        assert isinstance(site, CloudSite)
        return site

    def admit(self, ctx: Ctx, spec: RouteSpec) -> Admission:
        auth = ctx.sim.atlassian
        access = auth.peek(bearer_token(ctx))
        if access is None:
            return Admission()  # authenticate() refuses it; an unknown token costs the app nothing
        verdict = self._site(ctx).limits.admit(
            app_pool=auth.pool(access.client_id),
            client_id=access.client_id,
            route=(spec.method, spec.path),
            issue_key=ctx.issue_key,
            write=spec.write,
            window=auth.settings.quota_window_seconds,
        )
        if verdict.refusal is None:
            return Admission(headers=verdict.headers)
        ctx.client = access.client_id
        ctx.limit_reason = verdict.refusal.reason
        refusal = JSONResponse(error_body([f"Rate limit exceeded ({verdict.refusal.reason})."]), status_code=429)
        return Admission(allowed=False, headers=verdict.headers, refusal=refusal)

    async def authenticate(self, ctx: Ctx, spec: RouteSpec) -> None:
        # the gateway wants a token on every Cloud route, serverInfo included
        auth = ctx.sim.atlassian
        access, problem = auth.check_access(bearer_token(ctx))
        if access is None:
            ctx.problem = problem
            raise ApiError(401, body=UNAUTHORIZED)
        ctx.client = access.client_id
        site = self._site(ctx)
        user = auth.member(site, access.account_id)
        if site.cloud_id not in access.cloud_ids or user is None:
            ctx.problem = "site_not_granted"
            raise ApiError(401, body=UNAUTHORIZED)
        ctx.user = user
        if spec.cloud_scope not in access.scopes:
            ctx.problem = "scope_mismatch"
            raise ApiError(401, body=SCOPE_MISMATCH)
        ctx.auth = "3lo"

    def settle(self, ctx: Ctx, spec: RouteSpec, response: Response, dropped: bool) -> None:
        if ctx.auth != "3lo" or ctx.client is None:
            return  # refused at the gateway: not Jira's work, no points
        if spec.write:
            points = 1
        else:
            succeeded = 200 <= response.status_code < 300 and not dropped
            points = 1 + (ctx.objects if ctx.objects is not None else int(succeeded))
        ctx.points = points
        auth = ctx.sim.atlassian
        self._site(ctx).limits.charge(
            app_pool=auth.pool(ctx.client),
            client_id=ctx.client,
            points=points,
            window=auth.settings.quota_window_seconds,
        )

    def identity_headers(self, ctx: Ctx) -> dict[str, str]:
        return {"X-AACCOUNTID": ctx.user.account_id} if ctx.user else {}


class PlatformGate:
    """Atlassian's authorization server and the gateway's own resources: no limits; handlers authenticate."""

    def admit(self, ctx: Ctx, spec: RouteSpec) -> Admission:
        return Admission()

    async def authenticate(self, ctx: Ctx, spec: RouteSpec) -> None:
        return None

    def settle(self, ctx: Ctx, spec: RouteSpec, response: Response, dropped: bool) -> None:
        return None

    def identity_headers(self, ctx: Ctx) -> dict[str, str]:
        return {}
