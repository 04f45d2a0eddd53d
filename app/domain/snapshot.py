"""What a worklog holds, instant-normalised: the base the conflict policy compares JIRA's state with. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.worklog import WorklogBody, jira_time_ms


@dataclass(frozen=True)
class WorklogSnapshot:
    """`started` as epoch ms (JIRA renders it in its own zone), seconds, and the comment without surrounding
    white space (JIRA may trim it): two snapshots are equal exactly when JIRA would show the same worklog."""

    started_ms: int
    time_spent_seconds: int
    comment: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "comment", self.comment.strip())

    @classmethod
    def of_body(cls, body: WorklogBody) -> WorklogSnapshot:
        """What we write (or wrote) for this body."""
        return cls(jira_time_ms(body.started), body.time_spent_seconds, body.comment)

    @classmethod
    def of_remote(cls, started: str, time_spent_seconds: int, comment: str | None) -> WorklogSnapshot:
        """JIRA's rendering of a worklog; raises ValueError when `started` is unreadable."""
        return cls(jira_time_ms(started), int(time_spent_seconds), comment or "")

    def as_json(self) -> dict[str, Any]:
        """The stored form (the entry's `base` column)."""
        return {"started_ms": self.started_ms, "time_spent_seconds": self.time_spent_seconds, "comment": self.comment}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> WorklogSnapshot | None:
        """The stored form read back; None when nothing (readable) is stored."""
        if not data:
            return None
        started, seconds = data.get("started_ms"), data.get("time_spent_seconds")
        if not isinstance(started, int) or not isinstance(seconds, int):
            return None
        return cls(started, seconds, str(data.get("comment") or ""))
