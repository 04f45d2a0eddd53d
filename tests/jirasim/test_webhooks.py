"""Webhooks: delivered for every worklog change, HMAC-signed, duplicates and re-sends."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from jirasim.testing import SimServer

from .conftest import Jira, Receiver

SECRET = "s3cret-webhook"


def wait_for_counter(sim: SimServer, name: str, value: int, timeout: float = 10.0) -> None:
    """The simulator counts a delivery after reading the receiver's answer, a moment after the receiver saw it."""
    deadline = time.monotonic() + timeout
    while (current := sim.control.counters("jira1")[name]) < value:
        assert time.monotonic() < deadline, f"{name} = {current}, expected {value}"
        time.sleep(0.02)
    assert current == value


def wait_for_deliveries(sim: SimServer, value: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len((events := sim.control.webhook_events("jira1"))[0]["deliveries"]) < value:
        assert time.monotonic() < deadline, events
        time.sleep(0.02)
    assert len(events[0]["deliveries"]) == value
    return events


def _verify(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature"] == expected
    assert headers["content-type"] == "application/json"
    payload: dict[str, Any] = json.loads(body)
    return payload


def test_every_change_is_delivered_and_signed(sim: SimServer, alice: Jira, receiver: Receiver) -> None:
    sim.control.set_webhook("jira1", receiver.url, SECRET)
    wl = alice.add_worklog("PROJ-2", 3600, comment="via REST").json()
    alice("PUT", f"issue/PROJ-2/worklog/{wl['id']}", json={"comment": "edited via REST"})
    sim.control.remote_edit("jira1", wl["id"], comment="edited in JIRA", as_user="bob")
    sim.control.remote_delete("jira1", wl["id"])
    other = sim.control.create_worklog_as("jira1", "PROJ-1", "carol", 600)

    payloads = [_verify(h, b) for h, b in receiver.wait_for(5)]
    events = [(p["webhookEvent"], p["worklog"]["id"]) for p in payloads]
    assert sorted(events) == sorted(
        [
            ("worklog_created", wl["id"]),
            ("worklog_updated", wl["id"]),
            ("worklog_updated", wl["id"]),
            ("worklog_deleted", wl["id"]),
            ("worklog_created", other["id"]),
        ]
    )
    for p in payloads:
        assert isinstance(p["timestamp"], int)
        assert p["worklog"]["issueId"] in (wl["issueId"], other["issueId"])
        assert {"author", "updateAuthor", "started", "timeSpentSeconds", "self"} <= set(p["worklog"])
    wait_for_counter(sim, "webhooks_sent", 5)  # counted once the receiver's answer is read


def test_duplicates_and_resend(sim: SimServer, alice: Jira, receiver: Receiver) -> None:
    sim.control.set_webhook("jira1", receiver.url, SECRET, duplicates=1)
    alice.add_worklog("PROJ-1")
    first, second = receiver.wait_for(2)
    assert first[1] == second[1]  # byte-identical duplicate
    events = wait_for_deliveries(sim, 2)
    assert len(events) == 1
    sim.control.resend_webhook("jira1", events[0]["id"])
    third = receiver.wait_for(3)[2]
    assert third[1] == first[1]
    _verify(*third)


def test_no_target_no_delivery_but_events_recorded(sim: SimServer, alice: Jira) -> None:
    alice.add_worklog("PROJ-1")
    events = sim.control.webhook_events("jira1")
    assert [e["webhookEvent"] for e in events] == ["worklog_created"]
    assert events[0]["deliveries"] == []


def test_unreachable_target_is_counted(sim: SimServer, alice: Jira, receiver: Receiver) -> None:
    url = receiver.url
    receiver.close()
    sim.control.set_webhook("jira1", url, SECRET, timeout_seconds=0.5)
    alice.add_worklog("PROJ-1")
    deadline = time.monotonic() + 5
    while sim.control.counters("jira1")["webhooks_failed"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert sim.control.webhook_events("jira1")[0]["deliveries"][0]["error"]


def test_webhook_target_must_be_loopback(sim: SimServer) -> None:
    with pytest.raises(Exception, match="400"):
        sim.control.set_webhook("jira1", "http://example.com/hook", SECRET)
