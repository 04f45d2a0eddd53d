"""The entry resource (CONTRACT section 5), as the API answers it and the changes feed records it."""

from __future__ import annotations

from typing import Any

from app.domain.entry_sync import SyncedEntry


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def entry_view(row: SyncedEntry) -> dict[str, Any]:
    return {
        "id": row.id,
        "user": row.user,
        "ticket": row.ticket,
        "date": row.date.isoformat(),
        "start": row.start.strftime("%H:%M") if row.start.second == 0 else row.start.strftime("%H:%M:%S"),
        "duration": row.duration,
        "timezone": row.timezone,
        "description": row.description,
        "activity": row.activity,
        "jira_instance": str(row.requested_instance_id) if row.requested_instance_id else None,
        "updated_at": _iso(row.updated_at),
        "deleted": row.is_deleted,
        "sync": {
            "status": row.sync_status,
            "jira_instance": str(row.instance_id) if row.instance_id else None,
            "worklog_id": row.worklog_id,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "synced_at": _iso(row.synced_at),
            "updated_at": _iso(row.sync_updated_at),
        },
    }
