"""Control API under ``/_sim`` (JSON, unauthenticated, loopback clients only)."""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import oauth2
from .config import (
    AUTHORIZE_MODES,
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
from .faults import FaultConfigError, FaultRule, FaultSettings
from .instance import SimInstance
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


def _base(request: Request, inst: SimInstance) -> str:
    host = request.headers.get("host") or "127.0.0.1"
    return f"{request.url.scheme}://{host}{inst.context_path}"


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
        {"name": i.name, "url": base + i.context_path, "context_path": i.context_path} for i in sim.instances.values()
    ]


async def add_instance(request: Request, sim: Simulator) -> Any:
    config = InstanceConfig.from_dict(await _body(request))
    if config.name in sim.instances:
        raise ControlError(409, f"instance {config.name!r} already exists")
    return sim.add_instance(config).describe()


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
    return {"name": user.name, "key": user.key, "displayName": user.display_name, "timeZone": user.timezone}


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
    inst = _inst(request, sim)
    inst.faults.configure(FaultSettings.from_dict(await _body(request)))
    return inst.faults.to_dict()


async def clear_faults(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    inst.faults.clear()
    return inst.faults.to_dict()


async def add_fault_rule(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    inst.faults.add_rule(FaultRule.from_dict(await _body(request)))
    return inst.faults.to_dict()


async def get_faults(request: Request, sim: Simulator) -> Any:
    return _inst(request, sim).faults.to_dict()


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
    return [inst.render_worklog(w, base) for w in inst.state.worklogs_of(issue)]


async def all_worklogs(request: Request, sim: Simulator) -> Any:
    inst = _inst(request, sim)
    base = _base(request, inst)
    worklogs = sorted(inst.state.worklogs.values(), key=lambda w: w.id)
    return {
        "worklogs": [inst.render_worklog(w, base) for w in worklogs],
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


def _route(path: str, handler: ControlHandler, method: str) -> Route:
    return Route(PREFIX + path, _endpoint(handler), methods=[method])


INST = "/instances/{name}"

ROUTES: list[Route] = [
    _route("/health", health, "GET"),
    _route("/instances", list_instances, "GET"),
    _route("/instances", add_instance, "POST"),
    _route("/reset", reset_all, "POST"),
    _route("/log", request_log, "GET"),
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
    _route(INST + "/window-max", window_max, "GET"),
]
