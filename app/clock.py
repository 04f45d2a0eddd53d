"""The service's one clock. Decisions in `app/domain` never read it: they are handed `now`."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    """The current instant, timezone-aware (UTC)."""
    return datetime.now(UTC)
