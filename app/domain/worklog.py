"""The worklog TimeTracker writes to JIRA (CONTRACT section 5), and reading it back.

Pure functions: no I/O. One place formats `started`; one place builds and parses the comment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

NO_ACTIVITY = "no activity specified"
NO_DESCRIPTION = "no description given"
_ANCHOR = re.compile(r"^#(?P<id>[^:\s]+):\s?(?P<rest>.*)\Z", re.DOTALL)
_STARTED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{4}$")
# JIRA Server/DC comments are capped (by default 32767 characters); stay well inside it
MAX_COMMENT_CHARS = 32_000
# the worklog property the service writes on Jira Cloud beside the comment's `#<id>:` anchor (CONTRACT 12)
WORKLOG_PROPERTY_KEY = "timetracker"


@dataclass(frozen=True)
class WorklogBody:
    """What we send: exactly the three fields JIRA needs."""

    started: str
    time_spent_seconds: int
    comment: str

    def as_json(self) -> dict[str, object]:
        return {"comment": self.comment, "started": self.started, "timeSpentSeconds": self.time_spent_seconds}


@dataclass(frozen=True)
class ParsedComment:
    entry_id: str | None
    activity: str | None
    description: str


def _text_or(value: str | None, fallback: str) -> str:
    return value.strip() if value and value.strip() else fallback


def build_comment(entry_id: str, activity: str | None, description: str | None) -> str:
    """`#<id>: <activity or fallback>: <description or fallback>`, cut to JIRA's comment limit."""
    if not entry_id or ":" in entry_id or any(c.isspace() for c in entry_id):
        # an id the anchor cannot carry would make our worklog unfindable, and a retry would duplicate it
        raise ValueError(f"entry id {entry_id!r} cannot be written as a #<id>: anchor")
    comment = f"#{entry_id}: {_text_or(activity, NO_ACTIVITY)}: {_text_or(description, NO_DESCRIPTION)}"
    # JIRA (Java) counts UTF-16 code units: an emoji is two of them, so cut by units, never inside a pair
    encoded = comment.encode("utf-16-le")
    if len(encoded) // 2 > MAX_COMMENT_CHARS:
        comment = encoded[: (MAX_COMMENT_CHARS - 1) * 2].decode("utf-16-le", errors="ignore") + "…"
    return comment


def anchor_of(comment: str | None) -> str | None:
    """The entry id in a comment's `#<id>:` anchor, or None when the worklog is not ours."""
    if not comment:
        return None
    m = _ANCHOR.match(comment.strip())
    return m.group("id") if m else None


def parse_comment(comment: str | None) -> ParsedComment:
    """Split a worklog comment back into entry id, activity and description.

    Without an anchor the whole comment is the description. With one, the activity is the text up
    to the next `: ` (activities in TimeTracker do not contain that), the description the rest;
    the fallback texts map back to None / "".
    """
    text = (comment or "").strip()
    m = _ANCHOR.match(text)
    if not m:
        return ParsedComment(None, None, text)
    rest = m.group("rest")
    activity, sep, description = rest.partition(": ")
    if not sep:
        activity, description = rest, ""
    return ParsedComment(
        m.group("id"),
        None if activity.strip() == NO_ACTIVITY else activity.strip() or None,
        "" if description.strip() == NO_DESCRIPTION else description.strip(),
    )


def local_start(day: date, wall: time, zone: str) -> datetime:
    """The instant a wall time on a day in an IANA zone denotes.

    A wall time in a daylight-saving gap moves forward by the gap (02:30 → 03:30 on a spring-forward
    night); an ambiguous one (clocks going back) is its first occurrence.
    """
    tz = ZoneInfo(zone)
    naive = datetime.combine(day, wall.replace(tzinfo=None, fold=0))
    # fold=0 takes the offset in force before the transition; converting through UTC normalises a
    # time in the gap to the equivalent wall time after it.
    return naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)


def format_started(moment: datetime) -> str:
    """JIRA's `yyyy-MM-dd'T'HH:mm:ss.SSSZ`, always with an explicit offset (never `Z`)."""
    if moment.tzinfo is None:
        raise ValueError("started needs an aware datetime")
    millis = moment.microsecond // 1000
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}" + moment.strftime("%z")


def parse_started(value: str) -> datetime:
    """Parse JIRA's `started`/`updated` rendering (any offset) into an aware datetime."""
    if _STARTED.match(value):
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    # JIRA Cloud and webhooks sometimes send +hh:mm or Z; accept what fromisoformat understands
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        # a naive value could be any zone; comparing it to aware instants would fail later and obscurely
        raise ValueError(f"timestamp {value!r} carries no UTC offset")
    return moment


def build_worklog(
    *, entry_id: str, day: date, start: time, zone: str, duration_minutes: int,
    activity: str | None, description: str | None,
) -> WorklogBody:
    """The worklog for an entry's current state."""
    return WorklogBody(
        started=format_started(local_start(day, start, zone)),
        time_spent_seconds=duration_minutes * 60,
        comment=build_comment(entry_id, activity, description),
    )


@dataclass(frozen=True)
class LocalFields:
    """An entry's date, start and duration as JIRA's values imply them in the entry's zone."""

    day: date
    start: time
    duration_minutes: int


def adopt_remote(started: str, time_spent_seconds: int, zone: str) -> LocalFields:
    """JIRA's started/timeSpentSeconds expressed as TimeTracker's date, start and minutes."""
    moment = parse_started(started).astimezone(ZoneInfo(zone))
    # half a minute rounds up (round() would send 90 s to 2 min but 150 s to 2 min as well)
    minutes = max(0, (time_spent_seconds + 30) // 60)
    # fold dropped: TimeTracker's wall time has no notion of the second 02:30 of a night
    return LocalFields(moment.date(), moment.time().replace(microsecond=0, tzinfo=None, fold=0), minutes)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_ms(moment: datetime) -> int:
    """Epoch milliseconds (JIRA's `since`/`until`), in integer arithmetic."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def jira_time_ms(value: str) -> int:
    """JIRA's `started`/`updated` rendering as epoch milliseconds; raises ValueError when unreadable."""
    return utc_ms(parse_started(value))


def jira_time_ms_or_none(value: str | None) -> int | None:
    """`jira_time_ms`, or None for a missing or unreadable value (JIRA omits `updated` at times)."""
    if not value:
        return None
    try:
        return jira_time_ms(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class WorklogMarker:
    """Who a worklog belongs to in the service: a tenant's entry. Written as the worklog property
    `{"key": "timetracker", "value": {"tenant": …, "entry": …}}` on Cloud, where worklogs have properties."""

    tenant: str
    entry: str

    def as_property(self) -> dict[str, Any]:
        """The worklog property (`EntityProperty`) that carries the marker."""
        return {"key": WORKLOG_PROPERTY_KEY, "value": {"tenant": self.tenant, "entry": self.entry}}

    @classmethod
    def of_properties(cls, properties: object) -> WorklogMarker | None:
        """The marker among a worklog's properties (`[{"key", "value"}]` as JIRA lists them), or None."""
        if not isinstance(properties, list):
            return None
        for prop in properties:
            if isinstance(prop, Mapping) and prop.get("key") == WORKLOG_PROPERTY_KEY:
                value = prop.get("value")
                if isinstance(value, Mapping) and isinstance(value.get("tenant"), str) \
                        and isinstance(value.get("entry"), str):
                    return cls(value["tenant"], value["entry"])
                return cls("", "")  # a property of that key that is not ours to read: it marks nothing of ours
        return None


class Candidate(Protocol):
    """A worklog found on the issue, as far as adopting it is concerned."""

    @property
    def author(self) -> str | None: ...
    @property
    def anchor(self) -> str | None: ...
    @property
    def marker(self) -> WorklogMarker | None: ...


C = TypeVar("C", bound=Candidate)


def our_worklog(found: Sequence[C], *, marker: WorklogMarker, author: str) -> C | None:
    """The worklog a create with an unknown outcome made, among the issue's worklogs (CONTRACT 10.2, 11, 12).

    Only the connection's own JIRA user (`author`) can have written it; anyone can type an anchor into a comment.
    First the one carrying our worklog property (Cloud: it survives an edited comment and tells two tenants' entries
    of the same id apart), else the first one carrying the entry's `#<id>:` anchor and no property naming another
    entry (Data Center has no properties: the anchor alone)."""
    wanted = author.casefold()
    mine = [w for w in found if (w.author or "").casefold() == wanted]
    by_property = next((w for w in mine if w.marker == marker), None)
    if by_property is not None:
        return by_property
    return next((w for w in mine if w.marker is None and w.anchor == marker.entry), None)
