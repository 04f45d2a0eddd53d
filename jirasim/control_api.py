"""Control API under ``/_sim`` (JSON, unauthenticated, loopback clients only)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import oauth2
from .config import (
    AUTHORIZE_MODES,
    AtlassianAppConfig,
    CloudLimitsConfig,
    ConfigError,
    ConsumerConfig,
    InstanceConfig,
    IssueConfig,
    OAuth2ClientConfig,
    RateLimitConfig,
    UserConfig,
    WebhookConfig,
    check_oauth2_scopes,
    check_timezone,
)
from .control import PREFIX
from .faults import FaultConfigError, FaultInjector, FaultRule, FaultSettings
from .instance import CloudSite, SimInstance
from .oauth import grant_access_token
from .simulator import Simulator
from .state import NotFound, Worklog
from .timefmt import now_ms, parse_duration, parse_loose_datetime


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _is_loopback(request: Request) -> bool:
    client = request.client
    if client is None:
        return True  # in-process test clients
    host = client.host
    if host in ("localhost", "testclient"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ControlHandler = Callable[[Request, Simulator], Awaitable[Any]]


def _endpoint(handler: ControlHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if not _is_loopback(request):
            return JSONResponse({"error": "control API is loopback only"}, status_code=403)
        sim: Simulator = request.app.state.sim
        try:
            result = await handler(request, sim)
        except ControlError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except (ConfigError, FaultConfigError, ValueError, TypeError, KeyError, NotFound) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return endpoint


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ControlError(400, f"invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ControlError(400, "JSON object expected")
    return data


def _inst(request: Request, sim: Simulator) -> SimInstance:
    name = request.path_params["name"]
    inst = sim.get(name)
    if inst is None:
        raise ControlError(404, f"no instance {name!r}")
    return inst


def _site(request: Request, sim: Simulator) -> CloudSite:
    inst = _inst(request, sim)
    if not isinstance(inst, CloudSite):
        raise ControlError(400, f"{inst.name!r} is not a Cloud site")
    return inst


def _faults(request: Request, sim: Simulator) -> FaultInjector:
    """The fault injector of ``/instances/{name}/faults`` or of ``/atlassian/faults`` (the auth server)."""
    return _inst(request, sim).faults if "name" in request.path_params else sim.atlassian.faults


def _base(request: Request, inst: SimInstance) -> str:
    host = request.headers.get("host") or "127.0.0.1"
    return f"{request.url.scheme}://{host}{inst.url_path}"


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes", "on")


def _worklog_by_id(inst: SimInstance, raw: str) -> Worklog:
    worklog = inst.state.worklogs.get(int(raw)) if raw.isdigit() else None
    if worklog is None:
        raise ControlError(404, f"no worklog {raw}")
    return worklog


def _seconds(inst: SimInstance, data: dict[str, Any]) -> int | None:
    if data.get("timeSpentSeconds") is not None:
        return int(data["timeSpentSeconds"])
    if data.get("timeSpent") is not None:
        cfg = inst.config
        return parse_duration(str(data["timeSpent"]), cfg.hours_per_day, cfg.days_per_week)
    return None


# -- general ---------------------------------------------------------------------
async def health(request: Request, sim: Simulator) -> Any:
    return {"status": "ok", "instances": sorted(sim.instances)}


async def list_instances(request: Request, sim: Simulator) -> Any:
    base = f"{request.url.scheme}://{request.headers.get('host', '127.0.0.1')}"
    return [
        {
            "name": i.name,
            "deployment": i.deployment,
            "url": base + i.url_path,
            "context_path": i.context_path,
            **({"cloud_id": i.cloud_id, "site_url": i.site_url} if isinstance(i, CloudSite) else {}),
        }
        for i in sim.instances.values()
    ]


async def add_instance(request: Request, sim: Simulator) -> Any:
    config = InstanceConfig.from_dict(await _body(request))
    if config.name in sim.instances:
        raise ControlError(409, f"instance {config.name!r} already exists")
    try:
        return sim.add_instance(config).describe()
    except ValueError as exc:
        raise ControlError(409, str(exc)) from exc


async def describe(request: Request, sim: Simulator) -> Any:
    return _inst(request, sim).describe()


async def reset_all(request: Request, sim: Simulator) -> Any:
    data = await _body(request)
    sim.reset(state=bool(data.get("state", True)), counters=bool(data.get("counters", True)))
    return {"reset": sorted(sim.instances)}


async def reset_instance(request: Request, sim: Simulator) -> Any:
    data = await _body(request)
    inst = _inst(request, sim)
    inst.reset(state=bool(data.get("state", True)), counters=bool(data.get("counters", True)))
    return {"reset": inst.name}


# -- data --------------------------------------------------------------------------
async def add_consumer(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    consumer = inst.state.add_consumer(ConsumerConfig.from_dict(await _body(request)))
    return {"consumer_key": consumer.key, "name": consumer.name}


async def remove_consumer(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    key = request.path_params["key"]
    if inst.state.consumers.pop(key, None) is None:
        raise ControlError(404, f"no consumer {key!r}")
    revoked = inst.state.revoke_tokens(consumer_key=key)
    return {"removed": key, "revoked_tokens": revoked}


async def add_user(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    user = inst.state.add_user(UserConfig.from_dict(await _body(request)))
    return {
        "name": user.name,
        "key": user.key,
        "accountId": user.account_id,
        "displayName": user.display_name,
        "timeZone": user.timezone,
    }


async def add_issue(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    issue = inst.state.add_issue(IssueConfig.from_dict(await _body(request)))
    return {"id": str(issue.id), "key": issue.key, "summary": issue.summary, "parent": issue.parent_key}


# -- OAuth tokens ----------------------------------------------------------------
async def list_tokens(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    return [t.to_dict() for t in inst.state.access_tokens.values()]


async def grant_token(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    data = await _body(request)
    access = grant_access_token(inst.state, str(data["consumer_key"]), str(data["user"]))
    return {"token": access.token, "secret": access.secret, "consumer_key": access.consumer_key, "user": access.user}


async def revoke_tokens(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    data = await _body(request)
    if not any(data.get(k) for k in ("user", "token", "consumer_key")):
        raise ControlError(400, "give user, token and/or consumer_key")
    count = inst.state.revoke_tokens(
        user=data.get("user"), token=data.get("token"), consumer_key=data.get("consumer_key")
    )
    return {"revoked": count}


# -- personal access tokens (Data Center) ---------------------------------------------
async def list_pats(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    return [p.to_dict() for p in inst.state.pats.values()]


async def create_pat(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    data = await _body(request)
    days = data.get("expiration_days")
    pat = inst.state.add_pat(
        str(data.get("user") or ""),
        str(data.get("name") or "token"),
        int(days) if days is not None else None,
        str(data["token"]) if data.get("token") else None,
    )
    return {**pat.to_dict(), "token": pat.token}


async def revoke_pats(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    data = await _body(request)
    if data.get("user") is None and data.get("id") is None:
        raise ControlError(400, "give user and/or id")
    pat_id = int(data["id"]) if data.get("id") is not None else None
    return {"revoked": inst.state.revoke_pats(user=data.get("user"), pat_id=pat_id)}


# -- OAuth 2.0 provider (Data Center) ---------------------------------------------------
async def list_oauth2_clients(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    return [c.to_dict() for c in inst.state.oauth2_clients.values()]


async def add_oauth2_client(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    data = await _body(request)
    data.setdefault("client_id", secrets.token_hex(16))
    data.setdefault("client_secret", secrets.token_hex(32))
    client = OAuth2ClientConfig.from_dict(data)
    if client.client_id in inst.state.oauth2_clients:
        raise ControlError(409, f"OAuth 2.0 client {client.client_id!r} already exists")
    inst.state.oauth2_clients[client.client_id] = client
    return {**client.to_dict(), "client_secret": client.client_secret}


async def remove_oauth2_client(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    client_id = request.path_params["client_id"]
    if inst.state.oauth2_clients.pop(client_id, None) is None:
        raise ControlError(404, f"no OAuth 2.0 client {client_id!r}")
    return {"removed": client_id, "revoked_tokens": oauth2.revoke(inst.state, client_id=client_id)}


async def list_oauth2_tokens(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    return {
        "tokens": [g.to_dict() for g in inst.state.oauth2_access.values()],
        "counts": dict(inst.state.oauth2_counts),
    }


async def grant_oauth2_tokens(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    data = await _body(request)
    scopes = check_oauth2_scopes(data["scopes"]) if data.get("scopes") else None
    grant = oauth2.grant_tokens(inst.state, str(data["client_id"]), str(data["user"]), scopes)
    return oauth2.token_answer(grant)


async def revoke_oauth2_tokens(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    data = await _body(request)
    if not data.get("user") and not data.get("client_id"):
        raise ControlError(400, "give user and/or client_id")
    return {"revoked": oauth2.revoke(inst.state, user=data.get("user"), client_id=data.get("client_id"))}


async def expire_oauth2_tokens(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    data = await _body(request)
    return {"expired": oauth2.expire_access(inst.state, user=data.get("user"))}


# -- settings ---------------------------------------------------------------------
async def set_rate_limit(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    merged = {**inst.rate_limit.to_dict(), **await _body(request)}
    inst.limiter.reconfigure(RateLimitConfig.from_dict(merged))
    if merged.get("refill", False):
        inst.limiter.reset()
    return inst.rate_limit.to_dict()


async def set_faults(request: Request, sim: Simulator) -> Any:
    faults = _faults(request, sim)
    faults.configure(FaultSettings.from_dict(await _body(request)))
    return faults.to_dict()


async def clear_faults(request: Request, sim: Simulator) -> Any:
    faults = _faults(request, sim)
    faults.clear()
    return faults.to_dict()


async def add_fault_rule(request: Request, sim: Simulator) -> Any:
    faults = _faults(request, sim)
    faults.add_rule(FaultRule.from_dict(await _body(request)))
    return faults.to_dict()


async def release_holds(request: Request, sim: Simulator) -> Any:
    faults = _faults(request, sim)
    faults.release()
    return faults.to_dict()


async def get_faults(request: Request, sim: Simulator) -> Any:
    return _faults(request, sim).to_dict()


async def set_settings(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    data = await _body(request)
    if "feed_delay_seconds" in data:
        inst.feed_delay_seconds = float(data["feed_delay_seconds"])
    if "display_timezone" in data:
        inst.display_timezone = check_timezone(str(data["display_timezone"]))
    if "authorize_mode" in data:
        mode = str(data["authorize_mode"])
        if mode not in AUTHORIZE_MODES:
            raise ControlError(400, f"authorize_mode must be one of {AUTHORIZE_MODES}")
        inst.authorize_mode = mode
    if "approve_as" in data:
        user = data["approve_as"]
        if user is not None and user not in inst.state.users:
            raise ControlError(400, f"unknown user {user!r}")
        inst.approve_as = user
    return inst.describe()


async def set_webhook(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    inst.set_webhook(WebhookConfig.from_dict(await _body(request)))
    return inst.webhook.to_dict()


async def webhook_events(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    return [e.to_dict() for e in sim.dispatcher.for_instance(inst.name)]


async def resend_webhook(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    event_id = int(request.path_params["event_id"])
    try:
        event = sim.dispatcher.find(event_id)
        if event.instance != inst.name:
            raise LookupError(f"event {event_id} belongs to {event.instance}")
        sim.dispatcher.resend(event_id, inst.webhook)
    except LookupError as exc:
        raise ControlError(404, str(exc)) from exc
    return {"resent": event_id}


# -- worklogs as people in JIRA would change them -----------------------------------
async def issue_worklogs(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    issue = inst.state.find_issue(request.path_params["key"])
    if issue is None:
        raise ControlError(404, f"no issue {request.path_params['key']!r}")
    base = _base(request, inst)
    return [inst.render_worklog(w, base, properties=True) for w in inst.state.worklogs_of(issue)]


async def all_worklogs(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    base = _base(request, inst)
    worklogs = sorted(inst.state.worklogs.values(), key=lambda w: w.id)
    return {
        "worklogs": [inst.render_worklog(w, base, properties=True) for w in worklogs],  # (Cloud: their properties)
        "deleted": [{"worklogId": k, "deletedTime": v} for k, v in sorted(inst.state.deleted.items())],
        "counts": inst.state.worklog_counts(),
    }


async def remote_create(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    issue = inst.state.find_issue(request.path_params["key"])
    if issue is None:
        raise ControlError(404, f"no issue {request.path_params['key']!r}")
    data = await _body(request)
    author = str(data.get("author") or "")
    if author not in inst.state.users:
        raise ControlError(400, f"unknown author {author!r}")
    seconds = _seconds(inst, data) or 3600
    started = parse_loose_datetime(data["started"]) if data.get("started") else now_ms()
    base = _base(request, inst)
    worklog = inst.create_worklog(issue, author, started, seconds, str(data.get("comment") or ""), base)
    return inst.render_worklog(worklog, base)


async def remote_edit(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    worklog = _worklog_by_id(inst, request.path_params["id"])
    data = await _body(request)
    as_user = str(data.get("as_user") or worklog.author)
    if as_user not in inst.state.users:
        raise ControlError(400, f"unknown user {as_user!r}")
    base = _base(request, inst)
    inst.update_worklog(
        worklog,
        as_user,
        base,
        started_ms=parse_loose_datetime(data["started"]) if data.get("started") else None,
        time_spent_seconds=_seconds(inst, data),
        comment=str(data["comment"]) if data.get("comment") is not None else None,
        updated_ms=parse_loose_datetime(data["updated"]) if data.get("updated") else None,
    )
    return inst.render_worklog(worklog, base)


async def remote_delete(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    worklog = _worklog_by_id(inst, request.path_params["id"])
    inst.delete_worklog(worklog, _base(request, inst))
    return {"deleted": worklog.id}


# -- observation ----------------------------------------------------------------------
async def counters(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    data = sim.observer.snapshot(inst.name)
    data["worklogs_per_issue"] = inst.state.worklog_counts()
    if not isinstance(inst, CloudSite):  # a Cloud site's limits: cloud-usage
        data["rate_limit_remaining"] = inst.limiter.peek_remaining()
    return data


async def window_max(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    window = float(request.query_params.get("window", "1.0"))
    accepted_only = _bool(request.query_params.get("accepted_only"))
    value = sim.observer.max_requests_in_any_window(inst.name, window, accepted_only)
    return {"instance": inst.name, "window": window, "accepted_only": accepted_only, "max": value}


async def request_log(request: Request, sim: Simulator) -> Any:
    q = request.query_params
    since = float(q["since"]) if q.get("since") else None
    limit = int(q["limit"]) if q.get("limit") else None
    return [r.to_dict() for r in sim.observer.records(q.get("instance"), since, limit)]


# -- the Atlassian platform (Cloud): apps, consent, tokens, clock, quotas --------------------------
_ATLASSIAN_FLOATS = (
    "access_token_seconds",
    "code_seconds",
    "refresh_reuse_interval_seconds",
    "refresh_inactivity_seconds",
    "refresh_absolute_seconds",
    "quota_window_seconds",
)


def _account_id(sim: Simulator, ref: Any) -> str | None:
    if ref is None:
        return None
    account = sim.atlassian.account(str(ref))
    if account is None:
        raise ControlError(400, f"unknown Atlassian account {ref!r}")
    return account.account_id


async def atlassian_describe(request: Request, sim: Simulator) -> Any:
    return sim.atlassian.describe()


async def atlassian_reset(request: Request, sim: Simulator) -> Any:
    data = await _body(request)
    counters = bool(data.get("counters", True))
    sim.atlassian.reset(state=bool(data.get("state", True)), counters=counters)
    if counters:
        sim.observer.reset(sim.atlassian.name)
    return {"reset": sim.atlassian.name}


async def atlassian_settings(request: Request, sim: Simulator) -> Any:
    auth = sim.atlassian
    data = await _body(request)
    settings = dataclasses.replace(auth.settings)
    if "authorize_mode" in data:
        if data["authorize_mode"] not in AUTHORIZE_MODES:
            raise ControlError(400, f"authorize_mode must be one of {AUTHORIZE_MODES}")
        settings.authorize_mode = str(data["authorize_mode"])
    if "approve_as" in data:
        _account_id(sim, data["approve_as"])
        settings.approve_as = data["approve_as"]
    if "approve_sites" in data:
        sites = data["approve_sites"]
        settings.approve_sites = tuple(str(x) for x in sites) if sites is not None else None
    for name in _ATLASSIAN_FLOATS:
        if name in data:
            setattr(settings, name, float(data[name]))
    settings.check()
    auth.settings = settings
    return auth.describe()


async def atlassian_add_app(request: Request, sim: Simulator) -> Any:
    data = await _body(request)
    data.setdefault("client_id", secrets.token_urlsafe(24))
    data.setdefault("client_secret", secrets.token_urlsafe(48))
    app = AtlassianAppConfig.from_dict(data)
    if app.client_id in sim.atlassian.apps:
        raise ControlError(409, f"app {app.client_id!r} already exists")
    sim.atlassian.add_app(app)
    return {**app.to_dict(), "client_secret": app.client_secret}


async def atlassian_app_quota(request: Request, sim: Simulator) -> Any:
    client_id = request.path_params["client_id"]
    app = sim.atlassian.apps.get(client_id)
    if app is None:
        raise ControlError(404, f"no app {client_id!r}")
    data = await _body(request)
    updated = AtlassianAppConfig.from_dict({**app.to_dict(), "client_secret": app.client_secret, **data})
    sim.atlassian.add_app(updated)
    return updated.to_dict()


async def atlassian_grants(request: Request, sim: Simulator) -> Any:
    return sim.atlassian.grants()


async def atlassian_grant(request: Request, sim: Simulator) -> Any:
    data = await _body(request)
    scopes = data.get("scopes") or ["read:jira-work", "write:jira-work", "read:jira-user", "offline_access"]
    sites = data.get("sites")
    return sim.atlassian.grant(str(data["client_id"]), str(data["user"]), sites, [str(x) for x in scopes])


async def atlassian_revoke(request: Request, sim: Simulator) -> Any:
    data = await _body(request)
    if not data.get("user") and not data.get("client_id"):
        raise ControlError(400, "give user and/or client_id")
    account_id = _account_id(sim, data.get("user"))
    return {"revoked": sim.atlassian.revoke(account_id=account_id, client_id=data.get("client_id"))}


async def atlassian_expire(request: Request, sim: Simulator) -> Any:
    data = await _body(request)
    return {"expired": sim.atlassian.expire_access(_account_id(sim, data.get("user")))}


async def atlassian_clock(request: Request, sim: Simulator) -> Any:
    auth = sim.atlassian
    if request.method == "PUT":
        auth.clock_offset = float((await _body(request)).get("offset_seconds", 0.0))
    elif request.method == "POST":
        auth.clock_offset += float((await _body(request))["seconds"])
    return {"offset_seconds": auth.clock_offset, "now": auth.now()}


async def atlassian_counters(request: Request, sim: Simulator) -> Any:
    auth = sim.atlassian
    data = sim.observer.snapshot(auth.name)
    data["oauth"] = dict(auth.counts)
    data["oauth_by_user"] = {name: dict(c) for name, c in auth.counts_by_account.items()}
    return data


async def atlassian_lose_token_answers(request: Request, sim: Simulator) -> Any:
    count = int((await _body(request)).get("count", 1))
    rule = FaultRule.from_dict(
        {"kind": "fail_after_write", "mode": "drop", "count": count, "method": "POST", "path_contains": "/oauth/token"}
    )
    sim.atlassian.faults.add_rule(rule)
    return sim.atlassian.faults.to_dict()


async def atlassian_usage(request: Request, sim: Simulator) -> Any:
    auth = sim.atlassian
    now = time.time()
    pools = {client_id: auth.pool(client_id) for client_id in auth.apps}
    return {"apps": {c: p.describe(now) if p is not None else None for c, p in pools.items()}}


# -- Cloud sites: limits and what they saw ------------------------------------------------------
async def set_cloud_limits(request: Request, sim: Simulator) -> Any:
    site = _site(request, sim)
    merged = {**site.limits.config.to_dict(), **await _body(request)}
    site.limits.configure(CloudLimitsConfig.from_dict(merged))
    return site.limits.config.to_dict()


async def cloud_usage(request: Request, sim: Simulator) -> Any:
    return _site(request, sim).limits.observations()


async def max_writes(request: Request, sim: Simulator) -> Any:
    site = _site(request, sim)
    window = float(request.query_params.get("window", "2.0"))
    issue = request.query_params.get("issue") or None
    return {"site": site.name, "window": window, "issue": issue, "max": site.limits.max_writes(window, issue)}


def _route(path: str, handler: ControlHandler, method: str) -> Route:
    return Route(PREFIX + path, _endpoint(handler), methods=[method])


INST = "/instances/{name}"

ROUTES: list[Route] = [
    _route("/health", health, "GET"),
    _route("/instances", list_instances, "GET"),
    _route("/instances", add_instance, "POST"),
    _route("/reset", reset_all, "POST"),
    _route("/log", request_log, "GET"),
    _route("/atlassian", atlassian_describe, "GET"),
    _route("/atlassian/reset", atlassian_reset, "POST"),
    _route("/atlassian/settings", atlassian_settings, "PUT"),
    _route("/atlassian/apps", atlassian_add_app, "POST"),
    _route("/atlassian/apps/{client_id}/quota", atlassian_app_quota, "PUT"),
    _route("/atlassian/grants", atlassian_grants, "GET"),
    _route("/atlassian/grants", atlassian_grant, "POST"),
    _route("/atlassian/grants/revoke", atlassian_revoke, "POST"),
    _route("/atlassian/tokens/expire", atlassian_expire, "POST"),
    _route("/atlassian/clock", atlassian_clock, "GET"),
    _route("/atlassian/clock", atlassian_clock, "PUT"),
    _route("/atlassian/clock/advance", atlassian_clock, "POST"),
    _route("/atlassian/counters", atlassian_counters, "GET"),
    _route("/atlassian/usage", atlassian_usage, "GET"),
    _route("/atlassian/faults", get_faults, "GET"),
    _route("/atlassian/faults", set_faults, "PUT"),
    _route("/atlassian/faults", clear_faults, "DELETE"),
    _route("/atlassian/faults/rules", add_fault_rule, "POST"),
    _route("/atlassian/lose-token-answers", atlassian_lose_token_answers, "POST"),
    _route(INST, describe, "GET"),
    _route(INST + "/reset", reset_instance, "POST"),
    _route(INST + "/consumers", add_consumer, "POST"),
    _route(INST + "/consumers/{key}", remove_consumer, "DELETE"),
    _route(INST + "/users", add_user, "POST"),
    _route(INST + "/issues", add_issue, "POST"),
    _route(INST + "/tokens", list_tokens, "GET"),
    _route(INST + "/tokens", grant_token, "POST"),
    _route(INST + "/tokens/revoke", revoke_tokens, "POST"),
    _route(INST + "/pats", list_pats, "GET"),
    _route(INST + "/pats", create_pat, "POST"),
    _route(INST + "/pats/revoke", revoke_pats, "POST"),
    _route(INST + "/oauth2/clients", list_oauth2_clients, "GET"),
    _route(INST + "/oauth2/clients", add_oauth2_client, "POST"),
    _route(INST + "/oauth2/clients/{client_id}", remove_oauth2_client, "DELETE"),
    _route(INST + "/oauth2/tokens", list_oauth2_tokens, "GET"),
    _route(INST + "/oauth2/tokens", grant_oauth2_tokens, "POST"),
    _route(INST + "/oauth2/tokens/revoke", revoke_oauth2_tokens, "POST"),
    _route(INST + "/oauth2/tokens/expire", expire_oauth2_tokens, "POST"),
    _route(INST + "/rate-limit", set_rate_limit, "PUT"),
    _route(INST + "/faults", get_faults, "GET"),
    _route(INST + "/faults", set_faults, "PUT"),
    _route(INST + "/faults", clear_faults, "DELETE"),
    _route(INST + "/faults/rules", add_fault_rule, "POST"),
    _route(INST + "/faults/release", release_holds, "POST"),
    _route(INST + "/settings", set_settings, "PUT"),
    _route(INST + "/webhook", set_webhook, "PUT"),
    _route(INST + "/webhook/events", webhook_events, "GET"),
    _route(INST + "/webhook/events/{event_id:int}/resend", resend_webhook, "POST"),
    _route(INST + "/issues/{key}/worklogs", issue_worklogs, "GET"),
    _route(INST + "/issues/{key}/worklogs", remote_create, "POST"),
    _route(INST + "/worklogs", all_worklogs, "GET"),
    _route(INST + "/worklogs/{id}", remote_edit, "PATCH"),
    _route(INST + "/worklogs/{id}", remote_delete, "DELETE"),
    _route(INST + "/counters", counters, "GET"),
    _route(INST + "/cloud-limits", set_cloud_limits, "PUT"),
    _route(INST + "/cloud-usage", cloud_usage, "GET"),
    _route(INST + "/max-writes", max_writes, "GET"),
    _route(INST + "/window-max", window_max, "GET"),
]
