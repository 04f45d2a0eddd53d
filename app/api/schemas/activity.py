"""Request and response shapes of conflicts, notifications, the changes feed and the audit log (CONTRACT 8)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.entries import EntryOut

LOCAL_EXAMPLE: dict[str, Any] = {
    "id": "4711", "user": "jdoe", "ticket": "PROJ-123", "date": "2026-11-25", "start": "09:00", "duration": 90,
    "timezone": "Europe/Berlin", "description": "Fix login", "activity": "Development", "jira_instance": None,
    "updated_at": "2026-11-25T10:31:00+00:00", "deleted": False,
    "sync": {"status": "conflict", "jira_instance": "5b0c…", "worklog_id": "10042", "attempts": 1,
             "last_error": "The JIRA worklog of entry 4711 (PROJ-123) was changed in JIRA: …",
             "synced_at": "2026-11-25T10:31:02+00:00", "updated_at": "2026-11-25T12:00:00+00:00"},
}
REMOTE_EXAMPLE: dict[str, Any] = {
    "worklog_id": "10042", "issue_id": "10001", "ticket": "PROJ-123", "started": "2026-11-25T08:00:00.000+0000",
    "time_spent_seconds": 7200, "comment": "#4711: Development: Fix login and logout",
    "updated": "2026-11-25T11:58:00.000+0000", "author": "jdoe",
    "date": "2026-11-25", "start": "09:00", "duration": 120, "description": "Fix login and logout",
}


class ConflictOut(BaseModel):
    """TimeTracker's entry and JIRA's worklog as they were when the conflict was (last) seen."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "0b7d6f1e-4f7a-4a47-9d7c-0d1c2f1e9a10", "entry_id": "4711", "local": LOCAL_EXAMPLE,
        "remote": REMOTE_EXAMPLE, "detected_at": "2026-11-25T12:00:00+00:00", "status": "open",
        "winner": None, "resolved_at": None, "jira_instance": "5b0c…",
    }]})

    id: str
    entry_id: str
    local: EntryOut = Field(description="the entry when the conflict was seen (as GET /api/v1/entries/{id})")
    remote: dict[str, Any] | None = Field(
        description="JIRA's worklog (its fields, plus date/start/duration/description in the entry's zone); "
                    "null when the worklog was deleted in JIRA")
    detected_at: datetime
    status: Literal["open", "resolved"]
    winner: Literal["timetracker", "jira"] | None = None
    resolved_at: datetime | None = None
    jira_instance: str | None = None


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"winner": "timetracker"}]})

    winner: Literal["timetracker", "jira"] = Field(
        description="`timetracker` pushes the entry's state to JIRA again; `jira` adopts JIRA's values into the entry")


class ResolveOut(ConflictOut):
    entry: EntryOut | None = Field(None, description="the entry after the decision")


class NotificationOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "9c1f…", "user": "jdoe", "kind": "conflict",
        "message": "The JIRA worklog of entry 4711 (PROJ-123) was changed in JIRA: …",
        "entry_id": "4711", "jira_instance": "5b0c…", "created_at": "2026-11-25T12:00:00+00:00", "read_at": None,
    }]})

    id: str
    user: str
    kind: str = Field(description="auth_required | conflict | sync_failed")
    message: str
    entry_id: str | None
    jira_instance: str | None
    created_at: datetime
    read_at: datetime | None


class ChangeOut(BaseModel):
    seq: int
    entry_id: str
    kind: str = Field(description="`sync_status` (a sync status change) or `remote_adoption` (JIRA's values adopted)")
    entry: EntryOut = Field(description="the entry as it was right after the change (as GET /api/v1/entries/{id})")


class ChangesPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [{"seq": 41, "entry_id": "4711", "kind": "sync_status", "entry": LOCAL_EXAMPLE}], "next": 41,
    }]})

    items: list[ChangeOut]
    next: int = Field(description="pass as `after` to read on; equals `after` when nothing new arrived")


class AuditOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "at": "2026-11-25T10:31:02+00:00", "action": "jira.create_worklog", "entry_id": "4711",
        "jira_instance": "5b0c…", "outcome": "ok", "http_status": 201,
        "detail": "POST /rest/api/2/issue/PROJ-123/worklog", "duration_ms": 84,
    }]})

    at: datetime
    action: str = Field(description="`jira.<operation>` for a JIRA call, `auth.*`, `conflict.resolve`, "
                                    "`entry.remote_adoption`, `remote.worklog_changed|deleted`")
    entry_id: str | None
    jira_instance: str | None
    outcome: str
    http_status: int | None
    detail: str | None
    duration_ms: int | None
