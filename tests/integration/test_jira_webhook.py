"""JIRA webhook (CONTRACT section 7): signature, size, unknown instance, echoes, worklogs that are not ours,
duplicates, out-of-order deliveries, and both branches of the conflict policy (CONTRACT section 8).

Everything is made by the service and by JIRA (the simulator): the instance through the instances API, the user
through the OAuth dance, the worklog by the push engine, JIRA-side edits in the simulator, and the webhook bodies
are the ones the simulator recorded for them. Only their delivery is in the test's hands (duplicates, late ones).
An entry changed "long ago" is one seen by `api_without_window`, an API process with `CONFLICT_WINDOW_SECONDS=0`.
"""

from __future__ import annotations

import json
import uuid

from app.security.signatures import sign_hub
from tests.integration.jira_world import (
    COMMENT,
    conflicts_of,
    deliver,
    entry_row,
    notifications_of,
    outcome,
    rendered,
    synced_entry,
)

SOME_WORKLOG = json.dumps({"webhookEvent": "worklog_updated", "timestamp": 1, "worklog": {
    "id": "10042", "issueId": "10001", "started": "2026-11-25T08:00:00.000+0000", "timeSpentSeconds": 60,
    "comment": "x", "updated": "2026-11-25T08:00:00.000+0000"}}).encode()


# -- authentication and shape ----------------------------------------------------------------------------------

async def test_unsigned_webhook_is_401(api, make_jira, tenant):  # type: ignore[no-untyped-def]
    jira = await make_jira(tenant, connected=False)
    r = await api.post(f"/webhooks/jira/{jira.id}", content=SOME_WORKLOG)
    assert r.status_code == 401


async def test_wrongly_signed_webhook_is_401(app, api, pusher, jira):  # type: ignore[no-untyped-def]
    worklog = await synced_entry(api, pusher, jira)
    body = jira.remote_edit(worklog["id"], time_spent_seconds=7200)
    assert (await deliver(api, jira, body, secret="not-the-secret")).status_code == 401
    assert (await deliver(api, jira, body, signature="sha1=abc")).status_code == 401
    assert (await deliver(api, jira, body, signature=sign_hub(jira.webhook_secret, body + b" "))).status_code == 401
    assert (await entry_row(app, jira.tenant_id)).sync_status == "synced"


async def test_unknown_instance_is_404(api):  # type: ignore[no-untyped-def]
    for iid in (uuid.uuid4(), "not-a-uuid"):
        r = await api.post(f"/webhooks/jira/{iid}", content=SOME_WORKLOG,
                           headers={"X-Hub-Signature": sign_hub("any-secret", SOME_WORKLOG)})
        assert r.status_code == 404


async def test_oversized_body_is_413(api, make_jira, tenant):  # type: ignore[no-untyped-def]
    jira = await make_jira(tenant, connected=False)
    body = b"{" + b" " * (1024 * 1024 + 1) + b"}"
    assert (await deliver(api, jira, body)).status_code == 413


async def test_malformed_body_is_400(api, make_jira, tenant):  # type: ignore[no-untyped-def]
    jira = await make_jira(tenant, connected=False)
    assert (await deliver(api, jira, b"not json")).status_code == 400
    assert (await deliver(api, jira, json.dumps({"webhookEvent": "worklog_updated"}).encode())).status_code == 400


async def test_non_worklog_events_are_ignored(api, make_jira, tenant):  # type: ignore[no-untyped-def]
    jira = await make_jira(tenant, connected=False)
    r = await deliver(api, jira, json.dumps({"webhookEvent": "jira:issue_updated", "issue": {}}).encode())
    assert r.status_code == 200 and r.json()["outcome"] == "ignore"


# -- what is not a remote change -----------------------------------------------------------------------------

async def test_echo_of_our_own_write_changes_nothing(app, api, api_without_window, pusher, jira):  # type: ignore[no-untyped-def]
    worklog = await synced_entry(api, pusher, jira)
    # JIRA's webhook for our own create, as JIRA sent it
    assert await outcome(api_without_window, jira, jira.last_event(worklog["id"])) == "ignore"
    # someone saves the worklog in JIRA without changing it: a newer `updated`, the same state
    assert await outcome(api_without_window, jira, jira.remote_edit(worklog["id"])) == "ignore"
    # JIRA renders the same instant in other zones: still what we wrote
    for hours, later in ((0, 2_000), (-5, 3_000), (9, 4_000)):
        assert await outcome(api_without_window, jira, rendered(worklog, hours=hours, later_ms=later)) == "ignore"
    row = await entry_row(app, jira.tenant_id)
    assert row.sync_status == "synced" and row.due_at is None
    assert await conflicts_of(app, jira.tenant_id) == []


async def test_worklogs_that_are_not_ours_are_ignored(app, api, api_without_window, pusher, jira):  # type: ignore[no-untyped-def]
    await synced_entry(api, pusher, jira)
    sim, name = jira.sim.control, jira.setup.sim_name
    meeting = sim.create_worklog_as(name, "PROJ-123", "bob", 60, comment="Meeting")
    # a copy of our anchor on a worklog the service did not write
    copy = sim.create_worklog_as(name, "PROJ-123", "bob", 60, comment=COMMENT)
    bodies = [jira.last_event(meeting["id"]), jira.last_event(copy["id"]),
              jira.remote_edit(copy["id"], time_spent_seconds=120), jira.remote_delete(meeting["id"])]
    for body in bodies:
        assert await outcome(api_without_window, jira, body) == "ignore"
    assert (await entry_row(app, jira.tenant_id)).sync_status == "synced"


async def test_worklog_of_another_tenants_instance_is_not_ours(app, api, api_without_window, pusher, make_jira,  # type: ignore[no-untyped-def]
                                                              make_tenant, jira):
    worklog = await synced_entry(api, pusher, jira)
    theirs = await make_jira(await make_tenant(name="Other"), connected=False)
    body = jira.remote_edit(worklog["id"], time_spent_seconds=7200)
    assert await outcome(api_without_window, theirs, body) == "ignore"
    assert (await entry_row(app, jira.tenant_id)).sync_status == "synced"


# -- real remote changes -----------------------------------------------------------------------------------------

async def test_remote_edit_of_an_old_entry_is_a_conflict_once(app, api, api_without_window, pusher, jira):  # type: ignore[no-untyped-def]
    worklog = await synced_entry(api, pusher, jira)
    earlier = jira.remote_edit(worklog["id"], time_spent_seconds=3000)
    body = jira.remote_edit(worklog["id"], time_spent_seconds=7200)
    r = await deliver(api_without_window, jira, body)
    assert r.status_code == 200 and r.json()["outcome"] == "jira_wins", r.text
    row = await entry_row(app, jira.tenant_id)
    assert row.sync_status == "conflict" and row.due_at is None
    assert "changed in JIRA" in (row.last_error or "") and "2h" in (row.last_error or "")
    # JIRA retries and duplicates the delivery; the earlier edit's webhook arrives late
    for again in (body, body, earlier):
        assert await outcome(api_without_window, jira, again) == "ignore"
    conflicts = await conflicts_of(app, jira.tenant_id)
    assert len(conflicts) == 1 and conflicts[0].status == "open"
    assert conflicts[0].remote is not None and conflicts[0].remote["time_spent_seconds"] == 7200
    assert conflicts[0].remote["duration"] == 120 and conflicts[0].remote["start"] == "09:00"
    assert conflicts[0].local["duration"] == 90
    notes = await notifications_of(app, jira.tenant_id)
    assert [(n.kind, n.user, n.entry_id) for n in notes] == [("conflict", "jdoe", "4711")]
    # the entry keeps TimeTracker's values until a person decides
    assert row.duration == 90


async def test_remote_edit_within_the_window_pushes_timetracker_again(app, api, pusher, jira):  # type: ignore[no-untyped-def]
    worklog = await synced_entry(api, pusher, jira)  # changed in TimeTracker just now
    assert await outcome(api, jira, jira.remote_edit(worklog["id"], time_spent_seconds=7200)) == "timetracker_wins"
    row = await entry_row(app, jira.tenant_id)
    assert row.sync_status == "pending" and row.due_at is not None and row.base is None
    assert row.worklog_id == worklog["id"]  # updated in place
    assert await conflicts_of(app, jira.tenant_id) == []
    await pusher(jira.tenant_id, "4711")
    assert jira.worklog("PROJ-123", worklog["id"])["timeSpentSeconds"] == 5400  # TimeTracker's state again


async def test_remote_deletion_of_an_old_entry_is_a_conflict_with_no_remote(app, api, api_without_window, pusher,  # type: ignore[no-untyped-def]
                                                                            jira):
    worklog = await synced_entry(api, pusher, jira)
    edited = jira.remote_edit(worklog["id"], time_spent_seconds=60)  # an edit just before the deletion...
    body = jira.remote_delete(worklog["id"])
    assert await outcome(api_without_window, jira, body) == "jira_wins"
    assert await outcome(api_without_window, jira, body) == "ignore"
    assert await outcome(api_without_window, jira, edited) == "ignore"  # ...whose webhook arrives after it
    row = await entry_row(app, jira.tenant_id)
    assert row.sync_status == "conflict" and "deleted in JIRA" in (row.last_error or "")
    conflicts = await conflicts_of(app, jira.tenant_id)
    assert len(conflicts) == 1 and conflicts[0].remote is None


async def test_remote_deletion_within_the_window_recreates(app, api, pusher, jira):  # type: ignore[no-untyped-def]
    worklog = await synced_entry(api, pusher, jira)
    assert await outcome(api, jira, jira.remote_delete(worklog["id"])) == "timetracker_wins"
    row = await entry_row(app, jira.tenant_id)
    assert row.sync_status == "pending" and row.worklog_id is None and row.base is None and row.due_at is not None
    await pusher(jira.tenant_id, "4711")
    again = (await api.get("/api/v1/entries/4711", headers=jira.headers)).json()
    assert again["sync"]["status"] == "synced" and again["sync"]["worklog_id"] != worklog["id"]
    assert jira.worklog("PROJ-123", again["sync"]["worklog_id"])["comment"] == COMMENT


async def test_jira_going_back_to_our_state_dissolves_the_conflict(app, api, api_without_window, pusher, jira):  # type: ignore[no-untyped-def]
    worklog = await synced_entry(api, pusher, jira)
    assert await outcome(api_without_window, jira, jira.remote_edit(worklog["id"], time_spent_seconds=7200)) == \
        "jira_wins"
    assert await outcome(api_without_window, jira, jira.remote_edit(worklog["id"], time_spent_seconds=5400)) == \
        "ignore"
    row = await entry_row(app, jira.tenant_id)
    assert row.sync_status == "synced"
    assert [c.status for c in await conflicts_of(app, jira.tenant_id)] == ["resolved"]
