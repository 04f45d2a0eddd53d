"""The worklog written to JIRA and read back (CONTRACT sections 5 and 8), as tables of cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from app.domain.worklog import (
    MAX_COMMENT_CHARS,
    NO_ACTIVITY,
    NO_DESCRIPTION,
    LocalFields,
    ParsedComment,
    adopt_remote,
    anchor_of,
    build_comment,
    build_worklog,
    format_started,
    local_start,
    parse_comment,
    parse_started,
    utc_ms,
)


@pytest.mark.parametrize(("activity", "description", "expected"), [
    ("Development", "Fix login", "#4711: Development: Fix login"),
    (None, "Fix login", f"#4711: {NO_ACTIVITY}: Fix login"),
    ("", "Fix login", f"#4711: {NO_ACTIVITY}: Fix login"),
    ("   ", "Fix login", f"#4711: {NO_ACTIVITY}: Fix login"),
    ("Development", None, f"#4711: Development: {NO_DESCRIPTION}"),
    ("Development", " \t\n", f"#4711: Development: {NO_DESCRIPTION}"),
    (None, None, f"#4711: {NO_ACTIVITY}: {NO_DESCRIPTION}"),
    ("  Review ", "  trimmed  ", "#4711: Review: trimmed"),
])
def test_comment_format_and_fallbacks(activity: str | None, description: str | None, expected: str) -> None:
    assert build_comment("4711", activity, description) == expected


def test_long_comment_is_cut_to_jira_limit_and_keeps_its_anchor() -> None:
    comment = build_comment("4711", "Development", "x" * 40_000)
    assert len(comment) == MAX_COMMENT_CHARS
    assert comment.endswith("…")
    assert anchor_of(comment) == "4711"


@pytest.mark.parametrize("bad_id", ["", "a:b", "a b", "a\tb"])
def test_ids_the_anchor_cannot_carry_are_refused(bad_id: str) -> None:
    with pytest.raises(ValueError, match="anchor"):
        build_comment(bad_id, "a", "b")


@pytest.mark.parametrize(("comment", "anchor"), [
    ("#4711: Development: Fix login", "4711"),
    ("#4711:no space", "4711"),
    ("  #abc-1.2_x~: padded", "abc-1.2_x~"),
    ("#4711:", "4711"),
    ("#4711: multi\nline", "4711"),
    ("4711: no hash", None),
    ("# 4711: space after hash", None),
    ("#4711 no colon", None),
    ("#: empty id", None),
    ("Worked on #4711: in the middle", None),
    ("", None),
    (None, None),
])
def test_anchor_parsing(comment: str | None, anchor: str | None) -> None:
    assert anchor_of(comment) == anchor


@pytest.mark.parametrize(("comment", "parsed"), [
    ("#4711: Development: Fix login", ParsedComment("4711", "Development", "Fix login")),
    ("#4711: Development: Fix: the login", ParsedComment("4711", "Development", "Fix: the login")),
    (f"#4711: {NO_ACTIVITY}: {NO_DESCRIPTION}", ParsedComment("4711", None, "")),
    ("#4711: Development", ParsedComment("4711", "Development", "")),
    ("#4711:", ParsedComment("4711", None, "")),
    ("Edited by hand in JIRA", ParsedComment(None, None, "Edited by hand in JIRA")),
    (None, ParsedComment(None, None, "")),
])
def test_comment_parsing(comment: str | None, parsed: ParsedComment) -> None:
    assert parse_comment(comment) == parsed


@pytest.mark.parametrize(("activity", "description"), [
    ("Development", "Fix login"), (None, None), ("Meeting", "line one\nline two"), ("QA", "ratio 3:2"),
])
def test_comment_round_trip(activity: str | None, description: str | None) -> None:
    parsed = parse_comment(build_comment("4711", activity, description))
    assert parsed == ParsedComment("4711", activity, description or "")


@pytest.mark.parametrize(("day", "wall", "zone", "started"), [
    (date(2026, 11, 25), time(9, 0), "Europe/Berlin", "2026-11-25T09:00:00.000+0100"),
    (date(2026, 7, 1), time(9, 0), "Europe/Berlin", "2026-07-01T09:00:00.000+0200"),
    # spring forward: 02:30 does not exist, moves forward by the gap
    (date(2026, 3, 29), time(2, 30), "Europe/Berlin", "2026-03-29T03:30:00.000+0200"),
    (date(2026, 3, 29), time(1, 59), "Europe/Berlin", "2026-03-29T01:59:00.000+0100"),
    (date(2026, 3, 29), time(3, 0), "Europe/Berlin", "2026-03-29T03:00:00.000+0200"),
    # fall back: 02:30 happens twice, the first occurrence counts
    (date(2026, 10, 25), time(2, 30), "Europe/Berlin", "2026-10-25T02:30:00.000+0200"),
    (date(2026, 10, 25), time(3, 0), "Europe/Berlin", "2026-10-25T03:00:00.000+0100"),
    (date(2026, 3, 8), time(2, 30), "America/New_York", "2026-03-08T03:30:00.000-0400"),
    (date(2026, 11, 1), time(1, 30), "America/New_York", "2026-11-01T01:30:00.000-0400"),
    (date(2026, 11, 25), time(9, 0), "America/New_York", "2026-11-25T09:00:00.000-0500"),
    (date(2026, 11, 25), time(9, 0), "Asia/Kolkata", "2026-11-25T09:00:00.000+0530"),
    (date(2026, 11, 25), time(23, 45), "UTC", "2026-11-25T23:45:00.000+0000"),
])
def test_started_in_the_entry_zone(day: date, wall: time, zone: str, started: str) -> None:
    assert format_started(local_start(day, wall, zone)) == started


def test_started_always_has_milliseconds_and_explicit_offset() -> None:
    assert format_started(datetime(2026, 1, 2, 3, 4, 5, 678_900, tzinfo=UTC)) == "2026-01-02T03:04:05.678+0000"
    with pytest.raises(ValueError):
        format_started(datetime(2026, 1, 2, 3, 4, 5))


def test_build_worklog() -> None:
    body = build_worklog(entry_id="4711", day=date(2026, 11, 25), start=time(9, 0), zone="Europe/Berlin",
                         duration_minutes=90, activity="Development", description="Fix login")
    assert body.as_json() == {"comment": "#4711: Development: Fix login", "started": "2026-11-25T09:00:00.000+0100",
                              "timeSpentSeconds": 5400}


@pytest.mark.parametrize(("started", "seconds", "zone", "expected"), [
    # JIRA rendered our 09:00 Berlin entry in its own (UTC) zone
    ("2026-11-25T08:00:00.000+0000", 5400, "Europe/Berlin", LocalFields(date(2026, 11, 25), time(9, 0), 90)),
    # crossing midnight into the entry's zone
    ("2026-11-25T23:30:00.000+0000", 1800, "Asia/Kolkata", LocalFields(date(2026, 11, 26), time(5, 0), 30)),
    ("2026-11-25T09:00:00.000+0100", 3600, "America/New_York", LocalFields(date(2026, 11, 25), time(3, 0), 60)),
    ("2026-11-25T09:00:00.000+05:30", 60, "UTC", LocalFields(date(2026, 11, 25), time(3, 30), 1)),
    # seconds: half a minute rounds up, less rounds down
    ("2026-11-25T09:00:00.000+0000", 90, "UTC", LocalFields(date(2026, 11, 25), time(9, 0), 2)),
    ("2026-11-25T09:00:00.000+0000", 150, "UTC", LocalFields(date(2026, 11, 25), time(9, 0), 3)),
    ("2026-11-25T09:00:00.000+0000", 29, "UTC", LocalFields(date(2026, 11, 25), time(9, 0), 0)),
    # the second 02:30 of the fall-back night comes back as the wall time 02:30
    ("2026-10-25T01:30:00.000+0000", 60, "Europe/Berlin", LocalFields(date(2026, 10, 25), time(2, 30), 1)),
])
def test_adopt_remote_in_the_entry_zone(started: str, seconds: int, zone: str, expected: LocalFields) -> None:
    adopted = adopt_remote(started, seconds, zone)
    assert adopted == expected
    assert adopted.start.fold == 0 and adopted.start.tzinfo is None


def test_timestamps_compare_as_instants() -> None:
    assert parse_started("2026-11-25T09:00:00.000+0100") == parse_started("2026-11-25T08:00:00.000+0000")
    assert parse_started("2026-11-25T09:00:00.000+0100") == parse_started("2026-11-25T08:00:00Z")
    assert parse_started("2026-11-25T09:00:00.000+0100") != parse_started("2026-11-25T09:00:00.000+0000")


def test_timestamp_without_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="offset"):
        parse_started("2026-11-25T09:00:00")


def test_utc_ms_is_exact() -> None:
    assert utc_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert utc_ms(datetime(2026, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)) == 1_767_225_600_001
    assert utc_ms(parse_started("2026-11-25T09:00:00.007+0100")) == 1_795_593_600_007
