"""JIRA REST API v2 resources: serverInfo, myself, issue, search and worklogs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

from .pipeline import ApiError, Ctx, RouteSpec
from .render import issue_json, myself_json, server_info_json
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


def _fields_param(ctx: Ctx) -> list[str] | None:
    values = ctx.request.query_params.getlist("fields")
    fields = [f.strip() for v in values for f in v.split(",") if f.strip()]
    return fields or None


# -- server info / myself / issue ------------------------------------------------
async def server_info(ctx: Ctx) -> Response:
    now = format_jira_datetime(now_ms(), ctx.inst.display_timezone)
    return ok(server_info_json(ctx.base, now, f"Jira ({ctx.inst.name})"))


async def myself(ctx: Ctx) -> Response:
    return ok(myself_json(ctx.require_user(), ctx.base))


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


def parse_worklog_input(ctx: Ctx, data: Any, *, create: bool) -> WorklogInput:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ApiError(400, ["Can not deserialize instance of WorklogJsonBean out of non-object token"])
    if "properties" in data:
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
    return ok(
        {
            "startAt": start_at,
            "maxResults": max_results,
            "total": len(worklogs),
            "worklogs": [ctx.inst.render_worklog(w, ctx.base) for w in page],
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
    )
    return ok(ctx.inst.render_worklog(worklog, ctx.base), status=201)


async def get_worklog(ctx: Ctx) -> Response:
    issue = _issue(ctx, ctx.path_params["issue"])
    worklog = _worklog(ctx, issue, ctx.path_params["id"])
    return ok(ctx.inst.render_worklog(worklog, ctx.base))


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
    )
    return ok(ctx.inst.render_worklog(worklog, ctx.base))


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
    data: dict[str, Any] = {
        "values": [{"worklogId": wid, "updatedTime": ts, "properties": []} for wid, ts in items],
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
    return ok([ctx.inst.render_worklog(w, ctx.base) for w in found])


ROUTES: list[RouteSpec] = [
    RouteSpec("GET", f"{API}/serverInfo", server_info, auth="optional"),
    RouteSpec("GET", f"{API}/myself", myself),
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
]
