"""JSON representations in the shape JIRA Data Center 10.3 returns them."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .state import InstanceState, Issue, User, Worklog
from .timefmt import format_duration, format_jira_datetime

SERVER_VERSION = "10.3.0"
BUILD_NUMBER = 10030000
CLOUD_VERSION = "1001.0.0-SNAPSHOT"
CLOUD_BUILD_NUMBER = 100280


def error_body(messages: list[str] | None = None, errors: dict[str, str] | None = None) -> dict[str, Any]:
    return {"errorMessages": messages or [], "errors": errors or {}}


def _avatars(base: str, user: User) -> dict[str, str]:
    sizes = {"48x48": "large", "24x24": "small", "16x16": "xsmall", "32x32": "medium"}
    owner = quote(user.key)
    return {dim: f"{base}/secure/useravatar?size={size}&ownerId={owner}" for dim, size in sizes.items()}


def user_json(user: User, base: str) -> dict[str, Any]:
    return {
        "self": f"{base}/rest/api/2/user?username={quote(user.name)}",
        "name": user.name,
        "key": user.key,
        "emailAddress": user.email,
        "avatarUrls": _avatars(base, user),
        "displayName": user.display_name,
        "active": user.active,
        "timeZone": user.timezone,
    }


def cloud_user_json(user: User, base: str) -> dict[str, Any]:
    """A user as Jira Cloud shows one: an accountId, no name or key (GDPR)."""
    avatar = f"https://avatar-management.example.invalid/{quote(user.account_id)}"
    return {
        "self": f"{base}/rest/api/2/user?accountId={quote(user.account_id)}",
        "accountId": user.account_id,
        "emailAddress": user.email,
        "avatarUrls": {dim: f"{avatar}/{dim.split('x')[0]}" for dim in ("48x48", "24x24", "16x16", "32x32")},
        "displayName": user.display_name,
        "active": user.active,
        "timeZone": user.timezone,
        "accountType": "atlassian",
    }


def is_cloud(state: InstanceState) -> bool:
    return state.config.deployment == "cloud"


def person_json(state: InstanceState, user: User, base: str) -> dict[str, Any]:
    """A user in the shape of the instance's deployment."""
    return cloud_user_json(user, base) if is_cloud(state) else user_json(user, base)


def myself_json(state: InstanceState, user: User, base: str) -> dict[str, Any]:
    data = person_json(state, user, base)
    data.update(
        {
            "deleted": False,
            "locale": "en_US",
            "groups": {"size": 1, "items": []},
            "applicationRoles": {"size": 1, "items": []},
            "expand": "groups,applicationRoles",
        }
    )
    return data


def _user_or_unknown(state: InstanceState, name: str, base: str) -> dict[str, Any]:
    user = state.users.get(name)
    if user is None:
        user = User(name=name, display_name=name, timezone="UTC", key=name, email="", active=False, account_id=name)
    return person_json(state, user, base)


def properties_json(worklog: Worklog) -> list[dict[str, Any]]:
    return [{"key": key, "value": value} for key, value in sorted(worklog.properties.items())]


def worklog_json(
    state: InstanceState, worklog: Worklog, base: str, tz: str, *, properties: bool = False
) -> dict[str, Any]:
    """A worklog as the deployment renders it; Cloud adds ``properties`` when asked (``expand=properties``)."""
    cfg = state.config
    data: dict[str, Any] = {
        "self": f"{base}/rest/api/2/issue/{worklog.issue_id}/worklog/{worklog.id}",
        "author": _user_or_unknown(state, worklog.author, base),
        "updateAuthor": _user_or_unknown(state, worklog.update_author, base),
        "comment": worklog.comment,
        "created": format_jira_datetime(worklog.created_ms, tz),
        "updated": format_jira_datetime(worklog.updated_ms, tz),
    }
    if worklog.visibility:
        data["visibility"] = worklog.visibility
    data.update(
        {
            "started": format_jira_datetime(worklog.started_ms, tz),
            "timeSpent": format_duration(worklog.time_spent_seconds, cfg.hours_per_day, cfg.days_per_week),
            "timeSpentSeconds": worklog.time_spent_seconds,
            "id": str(worklog.id),
            "issueId": str(worklog.issue_id),
        }
    )
    if properties and is_cloud(state):
        data["properties"] = properties_json(worklog)
    return data


def issuetype_json(issue: Issue, base: str) -> dict[str, Any]:
    if issue.is_subtask:
        type_id, name, desc = "10003", "Sub-task", "The sub-task of the issue"
    else:
        type_id, name, desc = "10002", "Task", "A task that needs to be done."
    return {
        "self": f"{base}/rest/api/2/issuetype/{type_id}",
        "id": type_id,
        "description": desc,
        "iconUrl": f"{base}/secure/viewavatar?size=xsmall&avatarId=10318&avatarType=issuetype",
        "name": name,
        "subtask": issue.is_subtask,
        "avatarId": 10318,
    }


def _issue_ref(issue: Issue, base: str) -> dict[str, Any]:
    return {
        "id": str(issue.id),
        "key": issue.key,
        "self": f"{base}/rest/api/2/issue/{issue.id}",
        "fields": {
            "summary": issue.summary,
            "status": {"name": "Open", "id": "1"},
            "issuetype": issuetype_json(issue, base),
        },
    }


def _project_json(issue: Issue, base: str) -> dict[str, Any]:
    key = issue.project_key
    return {"self": f"{base}/rest/api/2/project/{key}", "key": key, "name": key}


def _wanted(name: str, fields: list[str] | None) -> bool:
    if not fields:
        return True
    if "*all" in fields or "*navigable" in fields:
        return f"-{name}" not in fields
    return name in fields


def issue_json(
    state: InstanceState,
    issue: Issue,
    base: str,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    all_fields: dict[str, Any] = {
        "summary": issue.summary,
        "issuetype": issuetype_json(issue, base),
        "project": _project_json(issue, base),
        "subtasks": [_issue_ref(s, base) for s in state.subtasks_of(issue.key)],
        "status": {"name": "Open", "id": "1"},
    }
    if issue.parent_key is not None:
        parent = state.issues_by_key.get(issue.parent_key)
        if parent is not None:
            all_fields["parent"] = _issue_ref(parent, base)
    selected = {k: v for k, v in all_fields.items() if _wanted(k, fields)}
    return {
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": str(issue.id),
        "self": f"{base}/rest/api/2/issue/{issue.id}",
        "key": issue.key,
        "fields": selected,
    }


def server_info_json(base: str, server_time: str, title: str, *, cloud: bool = False) -> dict[str, Any]:
    version = CLOUD_VERSION if cloud else SERVER_VERSION
    return {
        "baseUrl": base,
        "version": version,
        "versionNumbers": [int(p) for p in version.split("-")[0].split(".")],
        "deploymentType": "Cloud" if cloud else "Server",
        "buildNumber": CLOUD_BUILD_NUMBER if cloud else BUILD_NUMBER,
        "buildDate": "2024-12-03T00:00:00.000+0000",
        "serverTime": server_time,
        "scmInfo": "jirasim",
        "serverTitle": title,
    }
