"""JIRA date-time and duration formats."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

JIRA_DATETIME_PATTERN = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
_DATETIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})([+-])(\d{2})(\d{2})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([wdhm])", re.IGNORECASE)


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_jira_datetime(value: str) -> int:
    """Parse ``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` (offset as +hhmm/-hhmm) to epoch ms.

    Raises ValueError for anything else (``Z``, ``+01:00``, missing millis...).
    """
    m = _DATETIME_RE.match(value)
    if not m:
        raise ValueError(f"not a JIRA date-time: {value!r}")
    year, month, day, hour, minute, second, millis, sign, oh, om = m.groups()
    offset = timedelta(hours=int(oh), minutes=int(om))
    if offset >= timedelta(hours=24):
        raise ValueError(f"bad offset in {value!r}")
    tz = timezone(offset if sign == "+" else -offset)
    dt = datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        int(second),
        int(millis) * 1000,
        tzinfo=tz,
    )
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def format_jira_datetime(epoch_ms: int, tz: str = "UTC") -> str:
    """Render epoch ms in ``tz`` as ``2026-11-25T03:00:00.000-0500``."""
    seconds, millis = divmod(epoch_ms, 1000)
    dt = datetime.fromtimestamp(seconds, tz=ZoneInfo(tz))
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}" + dt.strftime("%z")


def parse_loose_datetime(value: str | int | float) -> int:
    """Accept the JIRA format, ISO 8601 (incl. ``Z``) or epoch ms (control API only)."""
    if isinstance(value, (int, float)):
        return int(value)
    try:
        return parse_jira_datetime(value)
    except ValueError:
        pass
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def parse_duration(value: str, hours_per_day: int = 8, days_per_week: int = 5) -> int:
    """Parse JIRA durations like ``1w 2d 3h 30m`` or ``1.5h`` into seconds.

    A bare number is taken as minutes (JIRA's default unit).
    """
    text = value.strip()
    if not text:
        raise ValueError("empty duration")
    if re.fullmatch(r"\d+", text):
        return int(text) * 60
    unit_seconds = {
        "m": 60,
        "h": 3600,
        "d": 3600 * hours_per_day,
        "w": 3600 * hours_per_day * days_per_week,
    }
    pos = 0
    total = 0.0
    for m in _DURATION_PART_RE.finditer(text):
        if text[pos : m.start()].strip():
            raise ValueError(f"invalid duration {value!r}")
        total += float(m.group(1)) * unit_seconds[m.group(2).lower()]
        pos = m.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"invalid duration {value!r}")
    return round(total)


def format_duration(seconds: int, hours_per_day: int = 8, days_per_week: int = 5) -> str:
    """Render seconds the way JIRA's "pretty" time tracking format does (``1d 2h 30m``)."""
    minutes = seconds // 60
    units = [
        ("w", 60 * hours_per_day * days_per_week),
        ("d", 60 * hours_per_day),
        ("h", 60),
        ("m", 1),
    ]
    parts: list[str] = []
    for suffix, size in units:
        count, minutes = divmod(minutes, size)
        if count:
            parts.append(f"{count}{suffix}")
    return " ".join(parts) if parts else "0m"
