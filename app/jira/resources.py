"""What JIRA answers, as small typed values, and how they are read from JIRA's JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.cloud import AccessibleSite
from app.domain.worklog import WorklogMarker, anchor_of

JsonObject = dict[str, Any]


def _str(value: object) -> str:
    return "" if value is None else str(value)


def _user_name(user: object) -> str | None:
    # Server/DC identifies users by `name` (the login), `key` the fallback for renamed users; Cloud by `accountId`
    if not isinstance(user, dict):
        return None
    name = user.get("name") or user.get("key") or user.get("accountId")
    return str(name) if name else None


@dataclass(frozen=True)
class RemoteWorklog:
    """A worklog as JIRA holds it; `anchor` is the entry id of our `#<id>:` anchor, if any; `marker` our worklog
    property, when JIRA listed the properties (Cloud, `expand=properties`); `author` a username or (Cloud) an
    accountId."""

    id: str
    issue_id: str
    started: str
    time_spent_seconds: int
    comment: str
    updated: str
    author: str | None
    anchor: str | None
    marker: WorklogMarker | None = None

    @classmethod
    def from_json(cls, data: JsonObject) -> RemoteWorklog:
        """Read one worklog object of JIRA's REST API v2."""
        comment = _str(data.get("comment"))
        return cls(
            id=_str(data.get("id")),
            issue_id=_str(data.get("issueId")),
            started=_str(data.get("started")),
            time_spent_seconds=int(data.get("timeSpentSeconds") or 0),
            comment=comment,
            updated=_str(data.get("updated")),
            author=_user_name(data.get("author")),
            anchor=anchor_of(comment),
            marker=WorklogMarker.of_properties(data.get("properties")),
        )


@dataclass(frozen=True)
class WorklogChange:
    """One entry of `worklog/updated` or `worklog/deleted`."""

    worklog_id: str
    updated_time: int  # JIRA epoch milliseconds

    @classmethod
    def from_json(cls, data: JsonObject) -> WorklogChange:
        """Read one `WorklogChangeBean`."""
        return cls(_str(data.get("worklogId")), int(data.get("updatedTime") or 0))


@dataclass(frozen=True)
class WorklogChanges:
    """All changes since a moment; `until` is where the next poll may start (minus the overlap)."""

    values: tuple[WorklogChange, ...]
    since: int
    until: int


@dataclass(frozen=True)
class Issue:
    """The few issue fields the service needs; `parent` is the parent's key for a sub-task."""

    key: str
    id: str
    summary: str
    subtask: bool
    parent: str | None

    @classmethod
    def from_json(cls, data: JsonObject) -> Issue:
        """Read an issue of `issue/{key}` or `search` asked for fields summary, issuetype, parent."""
        fields = data.get("fields") or {}
        issuetype = fields.get("issuetype") or {}
        parent = fields.get("parent") or {}
        return cls(
            key=_str(data.get("key")),
            id=_str(data.get("id")),
            summary=_str(fields.get("summary")),
            subtask=bool(issuetype.get("subtask", False)),
            parent=_str(parent.get("key")) or None,
        )


@dataclass(frozen=True)
class JiraUser:
    """The user an access token acts for (`myself`); `name` is the username, or on Cloud the accountId."""

    name: str
    key: str | None
    display_name: str
    email: str | None
    time_zone: str | None

    @classmethod
    def from_json(cls, data: JsonObject) -> JiraUser:
        """Read `myself`."""
        return cls(
            name=_str(data.get("name") or data.get("accountId")),
            key=data.get("key"),
            display_name=_str(data.get("displayName")),
            email=data.get("emailAddress"),
            time_zone=data.get("timeZone"),
        )


def accessible_sites(data: object) -> list[AccessibleSite]:
    """Read Atlassian's `oauth/token/accessible-resources` (a list of `{"id", "url", "name", "scopes"}`)."""
    if not isinstance(data, list):
        return []
    return [AccessibleSite(_str(s.get("id")), _str(s.get("url")), _str(s.get("name")))
            for s in data if isinstance(s, dict)]
