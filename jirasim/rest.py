"""JIRA REST API v2 resources: serverInfo, myself, issue, search and worklogs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse, Response

from .cloud_spec import problems
from .pipeline import CLOUD, ApiError, Ctx, RouteSpec
from .render import is_cloud, issue_json, myself_json, properties_json, server_info_json
from .state import Issue, Worklog
from .timefmt import JIRA_DATETIME_PATTERN, format_jira_datetime, now_ms, parse_duration, parse_jira_datetime

API = "/rest/api/2"
FEED_PAGE_SIZE = 1000
LIST_MAX_IDS = 1000
SEARCH_MAX_RESULTS = 1000
MIN_TIME_SPENT_SECONDS = 60

ISSUE_DOES_NOT_EXIST = "Issue Does Not Exist"
STARTED_INVALID = f'Invalid date format. Please enter the date in the format "{JIRA_DATETIME_PATTERN}".'
TIME_LOGGED_MISSING = "You must indicate the time spent working."
TIME_LOGGED_INVALID = "Invalid time duration entered."
NO_EDIT_PERMISSION = "You do not have the permission to edit this worklog."
NO_DELETE_PERMISSION = "You do not have the permission to delete this worklog."
PROPERTIES_UNSUPPORTED = (
    'Unrecognized field "properties" (Class com.atlassian.jira.rest.api.issue.WorklogJsonBean), not marked as ignorable'
)
PROPERTY_KEY_MAX = 255
PROPERTY_VALUE_MAX = 32768  # characters of the JSON value (Atlassian's entity property limit)


def ok(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status)


def _int_param(ctx: Ctx, name: str, default: int) -> int:
    raw = ctx.query(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ApiError(400, [f"Invalid value for query parameter '{name}': {raw}"]) from exc


def _issue(ctx: Ctx, id_or_key: str) -> Issue:
    issue = ctx.inst.state.find_issue(id_or_key)
    if issue is None:
        raise ApiError(404, [ISSUE_DOES_NOT_EXIST])
    return issue


def _worklog(ctx: Ctx, issue: Issue, worklog_id: str) -> Worklog:
    worklog = None
    if worklog_id.isdigit():
        worklog = ctx.inst.state.worklogs.get(int(worklog_id))
    if worklog is None or worklog.issue_id != issue.id:
        raise ApiError(404, [f"Cannot find worklog with id: '{worklog_id}'."])
    return worklog


def _cloud(ctx: Ctx) -> bool:
    return is_cloud(ctx.inst.state)


def _expand_properties(ctx: Ctx) -> bool:
    """Cloud's ``expand=properties`` on worklog reads."""
    values = ctx.request.query_params.getlist("expand")
    return _cloud(ctx) and "properties" in {v.strip() for raw in values for v in raw.split(",")}


def _check_cloud_body(ctx: Ctx, schema: str, data: Any) -> None:
    """On Cloud paths, a body must match the Cloud spec's schema (REST v2 flavour), like Jackson would insist."""
    if _cloud(ctx):
        found = problems(schema, data)
        if found:
            raise ApiError(400, [f"Request body does not match {schema}: {p}" for p in found])


def _fields_param(ctx: Ctx) -> list[str] | None:
    values = ctx.request.query_params.getlist("fields")
    fields = [f.strip() for v in values for f in v.split(",") if f.strip()]
    return fields or None


# -- server info / myself / issue ------------------------------------------------
async def server_info(ctx: Ctx) -> Response:
    now = format_jira_datetime(now_ms(), ctx.inst.display_timezone)
    return ok(server_info_json(ctx.base, now, f"Jira ({ctx.inst.name})", cloud=_cloud(ctx)))


async def myself(ctx: Ctx) -> Response:
    return ok(myself_json(ctx.inst.state, ctx.require_user(), ctx.base))


async def get_issue(ctx: Ctx) -> Response:
    issue = _issue(ctx, ctx.path_params["issue"])
    return ok(issue_json(ctx.inst.state, issue, ctx.base, _fields_param(ctx)))


# -- search -------------------------------------------------------------------------
_CLAUSE_RE = re.compile(
    r"^\s*(?P<field>parent|issuekey|key)\s*(?P<op>=|\bin\b)\s*(?P<value>.+?)\s*"
    r"(?:\border\s+by\b.*)?$",
    re.IGNORECASE | re.DOTALL,
)


def _jql_values(raw: str, op: str) -> list[str]:
    text = raw.strip()
    if op.lower() == "in":
        if not (text.startswith("(") and text.endswith(")")):
            raise ApiError(400, [f"Error in the JQL Query: expected a list after 'in' but got {raw}."])
        text = text[1:-1]
        return [v.strip().strip("\"'") for v in text.split(",") if v.strip()]
    return [text.strip("\"'")]


def _search_issues(ctx: Ctx, jql: str) -> list[Issue]:
    state = ctx.inst.state
    if not jql.strip() or re.fullmatch(r"\s*order\s+by\b.*", jql, re.IGNORECASE | re.DOTALL):
        return sorted(state.issues_by_id.values(), key=lambda i: i.id)
    m = _CLAUSE_RE.match(jql)
    if not m:
        raise ApiError(
            400,
            [
                "Error in the JQL Query: jirasim only supports 'parent = KEY', "
                f"'key = KEY' and 'key in (...)' clauses (query: {jql})."
            ],
        )
    field = m.group("field").lower()
    values = _jql_values(m.group("value"), m.group("op"))
    found: list[Issue] = []
    for value in values:
        issue = state.find_issue(value)
        if issue is None:
            raise ApiError(400, [f"An issue with key '{value}' does not exist for field '{field}'."])
        if field == "parent":
            found.extend(state.subtasks_of(issue.key))
        else:
            found.append(issue)
    return sorted({i.id: i for i in found}.values(), key=lambda i: i.id)


def _search_response(ctx: Ctx, jql: str, start_at: int, max_results: int, fields: list[str] | None) -> Response:
    if start_at < 0:
        raise ApiError(400, ["startAt must be >= 0"])
    max_results = max(0, min(max_results, SEARCH_MAX_RESULTS))
    issues = _search_issues(ctx, jql)
    page = issues[start_at : start_at + max_results]
    ctx.objects = len(page)
    fields = fields or ["summary", "issuetype", "parent", "project", "status", "subtasks"]
    return ok(
        {
            "expand": "names,schema",
            "startAt": start_at,
            "maxResults": max_results,
            "total": len(issues),
            "issues": [issue_json(ctx.inst.state, i, ctx.base, fields) for i in page],
        }
    )


async def search(ctx: Ctx) -> Response:
    return _search_response(
        ctx,
        ctx.query("jql", "") or "",
        _int_param(ctx, "startAt", 0),
        _int_param(ctx, "maxResults", 50),
        _fields_param(ctx),
    )


async def search_post(ctx: Ctx) -> Response:
    data = ctx.json() or {}
    if not isinstance(data, dict):
        raise ApiError(400, ["Request body must be a JSON object."])
    _check_cloud_body(ctx, "SearchRequestBean", data)
    fields = data.get("fields")
    max_results = data.get("maxResults")
    try:
        start_at = int(data.get("startAt") or 0)
        max_results = int(max_results) if max_results is not None else 50
    except (TypeError, ValueError) as exc:
        raise ApiError(400, ["startAt and maxResults must be integers."]) from exc
    return _search_response(
        ctx,
        str(data.get("jql") or ""),
        start_at,
        max_results,
        [str(f) for f in fields] if isinstance(fields, list) else None,
    )


# -- worklogs -------------------------------------------------------------------------
@dataclass
class WorklogInput:
    started_ms: int | None = None
    time_spent_seconds: int | None = None
    comment: str | None = None
    visibility: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None


def _property_key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not key.strip():
        return "The property key must be a non-empty string."
    if len(key) > PROPERTY_KEY_MAX:
        return f"The property key cannot be longer than {PROPERTY_KEY_MAX} characters."
    return None


def _property_value_problem(value: Any) -> str | None:
    if value is None:
        return "The property value must be a non-empty JSON value."
    if len(json.dumps(value, separators=(",", ":"))) > PROPERTY_VALUE_MAX:
        return f"The property value cannot be longer than {PROPERTY_VALUE_MAX} characters."
    return None


def _parse_properties(raw: list[dict[str, Any]], errors: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in raw:
        problem = _property_key_problem(item.get("key")) or _property_value_problem(item.get("value"))
        if problem:
            errors["properties"] = problem
            return {}
        found[item["key"]] = item["value"]
    return found


def parse_worklog_input(ctx: Ctx, data: Any, *, create: bool) -> WorklogInput:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ApiError(400, ["Can not deserialize instance of WorklogJsonBean out of non-object token"])
    _check_cloud_body(ctx, "Worklog", data)
    if "properties" in data and not _cloud(ctx):
        raise ApiError(400, [PROPERTIES_UNSUPPORTED])
    cfg = ctx.inst.config
    errors: dict[str, str] = {}
    result = WorklogInput()

    started = data.get("started")
    if started is not None:
        try:
            if not isinstance(started, str):
                raise ValueError(started)
            result.started_ms = parse_jira_datetime(started)
        except ValueError:
            errors["started"] = STARTED_INVALID

    seconds = data.get("timeSpentSeconds")
    spent = data.get("timeSpent")
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            errors["timeLogged"] = TIME_LOGGED_INVALID
        elif seconds < MIN_TIME_SPENT_SECONDS:
            errors["timeLogged"] = TIME_LOGGED_MISSING
        else:
            result.time_spent_seconds = int(seconds)
    elif spent is not None:
        try:
            if not isinstance(spent, str):
                raise ValueError(spent)
            parsed = parse_duration(spent, cfg.hours_per_day, cfg.days_per_week)
        except ValueError:
            errors["timeLogged"] = TIME_LOGGED_INVALID
        else:
            if parsed < MIN_TIME_SPENT_SECONDS:
                errors["timeLogged"] = TIME_LOGGED_MISSING
            else:
                result.time_spent_seconds = parsed
    elif create:
        errors["timeLogged"] = TIME_LOGGED_MISSING

    comment = data.get("comment")
    if comment is not None:
        result.comment = str(comment)
    visibility = data.get("visibility")
    if visibility is not None:
        if not isinstance(visibility, dict) or visibility.get("type") not in ("group", "role"):
            errors["visibility"] = "Visibility type must be 'group' or 'role'."
        else:
            result.visibility = {"type": visibility["type"], "value": str(visibility.get("value", ""))}
    if data.get("properties"):
        result.properties = _parse_properties(data["properties"], errors)
    if errors:
        raise ApiError(400, [], errors)
    return result


async def list_worklogs(ctx: Ctx) -> Response:
    issue = _issue(ctx, ctx.path_params["issue"])
    worklogs = ctx.inst.state.worklogs_of(issue)
    start_at = _int_param(ctx, "startAt", 0)
    max_results = _int_param(ctx, "maxResults", len(worklogs))
    if start_at < 0 or max_results < 0:
        raise ApiError(400, ["startAt and maxResults must be >= 0"])
    page = worklogs[start_at : start_at + max_results]
    ctx.objects = len(page)
    expand = _expand_properties(ctx)
    return ok(
        {
            "startAt": start_at,
            "maxResults": max_results,
            "total": len(worklogs),
            "worklogs": [ctx.inst.render_worklog(w, ctx.base, properties=expand) for w in page],
        }
    )


async def add_worklog(ctx: Ctx) -> Response:
    user = ctx.require_user()
    issue = _issue(ctx, ctx.path_params["issue"])
    data = parse_worklog_input(ctx, ctx.json(), create=True)
    assert data.time_spent_seconds is not None
    worklog = ctx.inst.create_worklog(
        issue,
        user.name,
        data.started_ms if data.started_ms is not None else now_ms(),
        data.time_spent_seconds,
        data.comment or "",
        ctx.base,
        data.visibility,
        data.properties,
    )
    return ok(ctx.inst.render_worklog(worklog, ctx.base, properties=_expand_properties(ctx)), status=201)


async def get_worklog(ctx: Ctx) -> Response:
    issue = _issue(ctx, ctx.path_params["issue"])
    worklog = _worklog(ctx, issue, ctx.path_params["id"])
    return ok(ctx.inst.render_worklog(worklog, ctx.base, properties=_expand_properties(ctx)))


async def update_worklog(ctx: Ctx) -> Response:
    user = ctx.require_user()
    issue = _issue(ctx, ctx.path_params["issue"])
    worklog = _worklog(ctx, issue, ctx.path_params["id"])
    if worklog.author != user.name:
        raise ApiError(403, [NO_EDIT_PERMISSION])
    data = parse_worklog_input(ctx, ctx.json(), create=False)
    ctx.inst.update_worklog(
        worklog,
        user.name,
        ctx.base,
        started_ms=data.started_ms,
        time_spent_seconds=data.time_spent_seconds,
        comment=data.comment,
        visibility=data.visibility,
        properties=data.properties,
    )
    return ok(ctx.inst.render_worklog(worklog, ctx.base, properties=_expand_properties(ctx)))


async def delete_worklog(ctx: Ctx) -> Response:
    user = ctx.require_user()
    issue = _issue(ctx, ctx.path_params["issue"])
    worklog = _worklog(ctx, issue, ctx.path_params["id"])
    if worklog.author != user.name:
        raise ApiError(403, [NO_DELETE_PERMISSION])
    ctx.inst.delete_worklog(worklog, ctx.base)
    return Response(status_code=204)


def _feed(ctx: Ctx, kind: str) -> Response:
    since = _int_param(ctx, "since", 0)
    until_limit = now_ms() - int(ctx.inst.feed_delay_seconds * 1000)
    state = ctx.inst.state
    if kind == "updated":
        items = state.updated_since(since, until_limit, FEED_PAGE_SIZE)
    else:
        items = state.deleted_since(since, until_limit, FEED_PAGE_SIZE)
    until = items[-1][1] if items else since
    last_page = len(items) < FEED_PAGE_SIZE
    url = f"{ctx.base}{API}/worklog/{kind}"
    ctx.objects = len(items)
    expand = kind == "updated" and _expand_properties(ctx)

    def properties(worklog_id: int) -> list[dict[str, Any]]:
        worklog = state.worklogs.get(worklog_id)
        return properties_json(worklog) if expand and worklog is not None else []

    data: dict[str, Any] = {
        "values": [{"worklogId": wid, "updatedTime": ts, "properties": properties(wid)} for wid, ts in items],
        "since": since,
        "until": until,
        "self": f"{url}?since={since}",
    }
    if not last_page:
        data["nextPage"] = f"{url}?since={until}"
    data["lastPage"] = last_page
    data["isLastPage"] = last_page
    return ok(data)


async def worklogs_updated(ctx: Ctx) -> Response:
    return _feed(ctx, "updated")


async def worklogs_deleted(ctx: Ctx) -> Response:
    return _feed(ctx, "deleted")


async def worklogs_list(ctx: Ctx) -> Response:
    data = ctx.json()
    _check_cloud_body(ctx, "WorklogIdsRequestBean", data)
    ids = data.get("ids") if isinstance(data, dict) else None
    if not isinstance(ids, list):
        raise ApiError(400, ["The request must contain a list of worklog ids ('ids')."])
    if len(ids) > LIST_MAX_IDS:
        raise ApiError(400, [f"The number of worklog ids cannot exceed {LIST_MAX_IDS}."])
    wanted: set[int] = set()
    for raw in ids:
        if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).isdigit():
            raise ApiError(400, [f"Invalid worklog id: {raw!r}"])
        wanted.add(int(raw))
    state = ctx.inst.state
    found = sorted((state.worklogs[i] for i in wanted if i in state.worklogs), key=lambda w: w.id)
    ctx.objects = len(found)
    expand = _expand_properties(ctx)
    return ok([ctx.inst.render_worklog(w, ctx.base, properties=expand) for w in found])


# -- worklog properties (Cloud) -----------------------------------------------------------
def _own_worklog(ctx: Ctx, message: str) -> Worklog:
    user = ctx.require_user()
    worklog = _worklog(ctx, _issue(ctx, ctx.path_params["issue"]), ctx.path_params["id"])
    if worklog.author != user.name:
        raise ApiError(403, [message])
    return worklog


def _property_missing(key: str) -> ApiError:
    return ApiError(404, [f"The property with key '{key}' does not exist."])


async def worklog_property_keys(ctx: Ctx) -> Response:
    worklog = _worklog(ctx, _issue(ctx, ctx.path_params["issue"]), ctx.path_params["id"])
    url = f"{ctx.base}{API}/issue/{worklog.issue_id}/worklog/{worklog.id}/properties"
    keys = [{"self": f"{url}/{quote(k, safe='')}", "key": k} for k in sorted(worklog.properties)]
    ctx.objects = len(keys)
    return ok({"keys": keys})


async def get_worklog_property(ctx: Ctx) -> Response:
    worklog = _worklog(ctx, _issue(ctx, ctx.path_params["issue"]), ctx.path_params["id"])
    key = ctx.path_params["key"]
    if key not in worklog.properties:
        raise _property_missing(key)
    return ok({"key": key, "value": worklog.properties[key]})


async def put_worklog_property(ctx: Ctx) -> Response:
    worklog = _own_worklog(ctx, NO_EDIT_PERMISSION)
    key = ctx.path_params["key"]
    value = ctx.json()
    problem = _property_key_problem(key) or _property_value_problem(value)
    if problem:
        raise ApiError(400, [problem])
    created = key not in worklog.properties
    worklog.properties[key] = value
    return Response(status_code=201 if created else 200)


async def delete_worklog_property(ctx: Ctx) -> Response:
    worklog = _own_worklog(ctx, NO_EDIT_PERMISSION)
    key = ctx.path_params["key"]
    if worklog.properties.pop(key, None) is None:
        raise _property_missing(key)
    return Response(status_code=204)


ROUTES: list[RouteSpec] = [
    RouteSpec("GET", f"{API}/serverInfo", server_info, auth="optional"),
    RouteSpec("GET", f"{API}/myself", myself, scope="read:jira-user"),
    RouteSpec("GET", f"{API}/issue/{{issue}}", get_issue, issue_param="issue"),
    RouteSpec("GET", f"{API}/search", search),
    RouteSpec("POST", f"{API}/search", search_post, json_body=True),
    RouteSpec("GET", f"{API}/issue/{{issue}}/worklog", list_worklogs, issue_param="issue"),
    RouteSpec("POST", f"{API}/issue/{{issue}}/worklog", add_worklog, write=True, issue_param="issue", json_body=True),
    RouteSpec("GET", f"{API}/issue/{{issue}}/worklog/{{id}}", get_worklog, issue_param="issue"),
    RouteSpec(
        "PUT", f"{API}/issue/{{issue}}/worklog/{{id}}", update_worklog, write=True, issue_param="issue", json_body=True
    ),
    RouteSpec(
        "DELETE",
        f"{API}/issue/{{issue}}/worklog/{{id}}",
        delete_worklog,
        write=True,
        issue_param="issue",
    ),
    RouteSpec("GET", f"{API}/worklog/updated", worklogs_updated),
    RouteSpec("GET", f"{API}/worklog/deleted", worklogs_deleted),
    RouteSpec("POST", f"{API}/worklog/list", worklogs_list, json_body=True),
    RouteSpec(
        "GET", f"{API}/issue/{{issue}}/worklog/{{id}}/properties", worklog_property_keys, issue_param="issue",
        deployments=(CLOUD,),
    ),
    RouteSpec(
        "GET", f"{API}/issue/{{issue}}/worklog/{{id}}/properties/{{key}}", get_worklog_property,
        issue_param="issue", deployments=(CLOUD,),
    ),
    RouteSpec(
        "PUT", f"{API}/issue/{{issue}}/worklog/{{id}}/properties/{{key}}", put_worklog_property,
        write=True, issue_param="issue", json_body=True, deployments=(CLOUD,),
    ),
    RouteSpec(
        "DELETE", f"{API}/issue/{{issue}}/worklog/{{id}}/properties/{{key}}", delete_worklog_property,
        write=True, issue_param="issue", deployments=(CLOUD,),
    ),
]
