"""Entry request and response schemas (CONTRACT section 5)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.schemas.common import SingleLine, Text
from app.domain.commands import ChangeEntry
from app.domain.entry import SyncStatus, normalise_ticket

MAX_DURATION_MINUTES = 24 * 60
ENTRY_EXAMPLE: dict[str, Any] = {
    "user": "jdoe", "ticket": "PROJ-123", "date": "2026-11-25", "start": "09:00", "duration": 90,
    "timezone": "Europe/Berlin", "description": "Fix login", "activity": "Development",
    "jira_instance": None, "updated_at": "2026-11-25T10:31:00Z",
}

EntryId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._~-]+$", examples=["4711"])]
# TimeTracker's integer ids: within 64 bits (a larger number is no TimeTracker id, and would not fit in 64 characters)
IntegerEntryId = Annotated[int, Field(ge=0, le=2**63 - 1)]


def check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


class EntryIn(BaseModel):
    """An entry as TimeTracker sends it."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [ENTRY_EXAMPLE]})

    user: Annotated[SingleLine, Field(min_length=1, max_length=200)]
    ticket: Annotated[str, Field(min_length=3, max_length=64, description="JIRA issue key, e.g. PROJ-123")]
    date: date
    start: time = Field(description="wall time in `timezone`, HH:MM or HH:MM:SS")
    duration: int = Field(ge=0, le=MAX_DURATION_MINUTES, description="minutes; 0 means no worklog")
    timezone: Annotated[str | None, Field(max_length=64)] = Field(None, description="IANA zone; default the tenant's")
    description: Annotated[Text | None, Field(max_length=100_000)] = None
    activity: Annotated[SingleLine | None, Field(max_length=500)] = None
    jira_instance: Annotated[SingleLine | None, Field(max_length=200)] = Field(
        None, description="id or name of the JIRA instance; default: routed by the ticket's project key"
    )
    updated_at: datetime | None = Field(None, description="orders changes; default: receive time")

    @field_validator("ticket")
    @classmethod
    def _ticket(cls, v: str) -> str:
        return normalise_ticket(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return check_timezone(v)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, v: object) -> object:
        if isinstance(v, str) and not _looks_like_time(v):
            raise ValueError("must be a wall time HH:MM or HH:MM:SS")
        return v

    @field_validator("start")
    @classmethod
    def _start_naive(cls, v: time) -> time:
        if v.tzinfo is not None:
            raise ValueError("must be a wall time without offset; put the zone in timezone")
        return v.replace(microsecond=0)

    @field_validator("updated_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            return v.replace(tzinfo=UTC)  # TimeTracker stamps are UTC when they carry no offset
        return v


    def command(self) -> ChangeEntry:
        """What the use case is asked to do."""
        return ChangeEntry(
            user=self.user, ticket=self.ticket, day=self.date, start=self.start, duration=self.duration,
            timezone=self.timezone, description=self.description, activity=self.activity,
            jira_instance=self.jira_instance, updated_at=self.updated_at,
        )


def _looks_like_time(v: str) -> bool:
    parts = v.split(":")
    return len(parts) in (2, 3) and all(p.isdigit() and len(p) == 2 for p in parts)


class BatchEntryIn(EntryIn):
    id: IntegerEntryId | EntryId

    @field_validator("id", mode="after")
    @classmethod
    def _id_str(cls, v: int | str) -> str:
        return str(v)


class SyncOut(BaseModel):
    status: SyncStatus
    jira_instance: str | None
    worklog_id: str | None
    attempts: int
    last_error: str | None
    synced_at: datetime | None
    updated_at: datetime


class EntryOut(BaseModel):
    id: str
    user: str
    ticket: str
    date: date
    start: str
    duration: int
    timezone: str
    description: str | None
    activity: str | None
    jira_instance: str | None
    updated_at: datetime
    deleted: bool
    sync: SyncOut


class EntryPage(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None


class BatchIn(BaseModel):
    entries: list[dict[str, Any]] = Field(max_length=1000, description="at most 1000 entries, each with its id")


class BatchItemResult(BaseModel):
    id: str | None
    status: Literal["accepted", "rejected"]
    error: str | None = None


class BatchOut(BaseModel):
    accepted: int
    results: list[BatchItemResult]
