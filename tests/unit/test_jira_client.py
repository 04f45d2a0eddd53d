"""The client's operations: paging, chunking, deletes, observation and the gate."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import respx
from prometheus_client import generate_latest

from app.domain.auth import Deployment
from app.domain.worklog import WorklogBody, WorklogMarker
from app.jira.calls import JiraCall
from app.jira.client import JiraClient
from app.jira.gate import NoGate, Priority
from app.jira.resources import Issue, WorklogChange
from app.metrics import REGISTRY
from tests.unit.test_jira_support import API, INSTANCE, make_client, make_target

BODY = WorklogBody(started="2026-11-25T09:00:00.000+0100", time_spent_seconds=5400, comment="#4711: Dev: Fix")


def worklog(i: int, comment: str | None = None) -> dict[str, object]:
    return {"id": str(i), "issueId": "10001", "started": "2026-11-25T09:00:00.000+0100", "timeSpentSeconds": 60 * i,
            "comment": comment if comment is not None else f"#{i}: Dev: work {i}",
            "updated": "2026-11-25T10:00:00.000+0100", "author": {"name": "jdoe", "key": "JIRAUSER1"}}


async def test_create_worklog_returns_remote_worklog_with_anchor() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.post(f"{API}/issue/PROJ-1/worklog").mock(
            return_value=httpx.Response(201, json=worklog(42, "#4711: Dev: Fix")))
        harness = make_client(http)
        result = await harness.client.create_worklog(make_target(), "PROJ-1", BODY)
    assert (result.id, result.issue_id, result.anchor, result.author) == ("42", "10001", "4711", "jdoe")
    assert result.time_spent_seconds == 2520
    assert route.calls.last.request.url.params["adjustEstimate"] == "leave"
    call = harness.calls[0]
    assert (call.instance_id, call.operation, call.method, call.status, call.outcome) == (
        INSTANCE.id, "create_worklog", "POST", 201, "ok")
    assert call.path == "/jira/rest/api/2/issue/PROJ-1/worklog"
    assert call.duration_ms >= 0


async def test_update_and_delete_leave_the_estimate() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        put = mock.put(f"{API}/issue/PROJ-1/worklog/42").mock(return_value=httpx.Response(200, json=worklog(42)))
        delete = mock.delete(f"{API}/issue/PROJ-1/worklog/42").mock(return_value=httpx.Response(204))
        client = make_client(http).client
        await client.update_worklog(make_target(), "PROJ-1", "42", BODY)
        assert await client.delete_worklog(make_target(), "PROJ-1", "42") is True
    assert json.loads(put.calls.last.request.content) == BODY.as_json()
    assert put.calls.last.request.url.params["adjustEstimate"] == "leave"
    assert delete.calls.last.request.url.params["adjustEstimate"] == "leave"


async def test_deleting_a_worklog_jira_no_longer_has_counts_as_done() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.delete(f"{API}/issue/PROJ-1/worklog/42").mock(
            return_value=httpx.Response(404, json={"errorMessages": ["Cannot find worklog with id: 42"]}))
        harness = make_client(http)
        assert await harness.client.delete_worklog(make_target(), "PROJ-1", "42") is False
    assert harness.calls[0].outcome == "permanent"  # the audit still shows what JIRA said


async def test_issue_worklogs_are_paged_until_total() -> None:
    pages = {0: [worklog(i) for i in range(1, 4)], 3: [worklog(i) for i in range(4, 6)]}

    def answer(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params["startAt"])
        return httpx.Response(200, json={"startAt": start, "maxResults": 3, "total": 5, "worklogs": pages[start]})

    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.get(f"{API}/issue/PROJ-1/worklog").mock(side_effect=answer)
        found = await make_client(http).client.list_issue_worklogs(make_target(), "PROJ-1")
    assert [w.id for w in found] == ["1", "2", "3", "4", "5"]
    assert route.call_count == 2


async def test_issue_worklogs_stop_when_jira_ignores_start_at() -> None:
    everything = {"startAt": 0, "maxResults": 2, "total": 3, "worklogs": [worklog(1), worklog(2)]}
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.get(f"{API}/issue/PROJ-1/worklog").mock(return_value=httpx.Response(200, json=everything))
        found = await make_client(http).client.list_issue_worklogs(make_target(), "PROJ-1")
    assert [w.id for w in found] == ["1", "2"]
    assert route.call_count == 2


async def test_find_our_worklog_by_anchor_only_among_the_authors_own() -> None:
    planted = {**worklog(2, "#4711: Dev: planted"), "author": {"name": "mallory", "key": "JIRAUSER9"}}
    page = {"startAt": 0, "maxResults": 4, "total": 4,
            "worklogs": [worklog(1, "someone else's"), planted, worklog(3, "#4711: Dev: mine"),
                         worklog(4, "#47110: x: y")]}
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.get(f"{API}/issue/PROJ-1/worklog").mock(return_value=httpx.Response(200, json=page))
        client = make_client(http).client
        found = await client.find_our_worklog(make_target(), "PROJ-1", WorklogMarker("t", "4711"), author="JDoe")
        missing = await client.find_our_worklog(make_target(), "PROJ-1", WorklogMarker("t", "999"), author="jdoe")
        not_ours = await client.find_our_worklog(make_target(), "PROJ-1", WorklogMarker("t", "4711"),
                                                 author="someone")
    assert found is not None and found.id == "3"  # mallory's worklog with our anchor came first: not adopted
    assert missing is None and not_ours is None
    assert "expand" not in route.calls.last.request.url.params  # Data Center has no worklog properties


async def test_updated_feed_follows_next_page_on_our_base_url() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        since = int(request.url.params["since"])
        if since == 1000:
            return httpx.Response(200, json={
                "values": [{"worklogId": 1, "updatedTime": 1100}, {"worklogId": 2, "updatedTime": 1200}],
                "since": 1000, "until": 1200, "lastPage": False,
                # JIRA's own idea of its address, unreachable from here
                "nextPage": "http://internal-jira:8080/rest/api/2/worklog/updated?since=1200"})
        return httpx.Response(200, json={"values": [{"worklogId": 3, "updatedTime": 1300}], "since": 1200,
                                         "until": 1300, "lastPage": True})

    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.get(f"{API}/worklog/updated").mock(side_effect=answer)
        changes = await make_client(http).client.worklogs_updated_since(make_target(), 1000)
    assert changes.values == (WorklogChange("1", 1100), WorklogChange("2", 1200), WorklogChange("3", 1300))
    assert (changes.since, changes.until) == (1000, 1300)
    assert route.call_count == 2


async def test_deleted_feed_single_page() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.get(f"{API}/worklog/deleted").mock(return_value=httpx.Response(200, json={
            "values": [{"worklogId": 9, "updatedTime": 5000}], "since": 10, "until": 5000, "isLastPage": True}))
        changes = await make_client(http).client.worklogs_deleted_since(make_target(), 10)
    assert changes.values == (WorklogChange("9", 5000),)
    assert changes.until == 5000


async def test_feed_that_does_not_advance_stops() -> None:
    stuck = {"values": [], "since": 10, "until": 10, "lastPage": False,
             "nextPage": f"{API}/worklog/updated?since=10"}
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.get(f"{API}/worklog/updated").mock(return_value=httpx.Response(200, json=stuck))
        await make_client(http).client.worklogs_updated_since(make_target(), 10)
    assert route.call_count == 1


async def test_worklog_list_is_chunked_by_1000_and_deduplicated() -> None:
    bodies: list[list[int]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["ids"]
        bodies.append(ids)
        return httpx.Response(200, json=[worklog(i) for i in ids[:2]])

    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.post(f"{API}/worklog/list").mock(side_effect=answer)
        found = await make_client(http).client.worklog_list(make_target(), [str(i) for i in range(1, 2501)] + ["5"])
    assert [len(b) for b in bodies] == [1000, 1000, 500]
    assert bodies[0][0] == 1 and bodies[2][-1] == 2500
    assert all(isinstance(i, int) for b in bodies for i in b)
    assert len(found) == 6


async def test_worklog_list_of_nothing_sends_nothing() -> None:
    async with respx.mock(assert_all_called=False) as mock, httpx.AsyncClient() as http:
        route = mock.post(f"{API}/worklog/list")
        assert await make_client(http).client.worklog_list(make_target(), []) == []
    assert route.call_count == 0


async def test_get_issue_and_subtasks() -> None:
    issue = {"id": "10002", "key": "PROJ-2", "fields": {"summary": "Child", "issuetype": {"subtask": True},
                                                        "parent": {"key": "PROJ-1"}}}

    def search(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params["startAt"])
        issues = [dict(issue, key=f"PROJ-{start + 2}")]
        return httpx.Response(200, json={"startAt": start, "maxResults": 1, "total": 2, "issues": issues})

    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.get(f"{API}/issue/PROJ-2").mock(return_value=httpx.Response(200, json=issue))
        mock.get(f"{API}/search").mock(side_effect=search)
        client = make_client(http).client
        got = await client.get_issue(make_target(), "PROJ-2")
        subtasks = await client.list_subtasks(make_target(), "PROJ-1")
    assert got == Issue(key="PROJ-2", id="10002", summary="Child", subtask=True, parent="PROJ-1")
    assert [s.key for s in subtasks] == ["PROJ-2", "PROJ-3"]


async def test_base_url_with_or_without_trailing_slash_and_no_context_path() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        route = mock.get("https://plain.example.test/rest/api/2/myself").mock(
            return_value=httpx.Response(200, json={"name": "jdoe"}))
        client = make_client(http).client
        await client.myself(make_target(base_url="https://plain.example.test"))
        await client.myself(make_target(base_url="https://plain.example.test/"))
    assert route.call_count == 2


async def test_every_request_passes_the_gate_with_the_target_priority() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.get(f"{API}/myself").mock(return_value=httpx.Response(200, json={"name": "jdoe"}))
        harness = make_client(http)
        await harness.client.myself(make_target(priority=Priority.BATCH))
    assert harness.gate.acquired == [(INSTANCE, Priority.BATCH)]
    assert harness.gate.observed[0][0] == 200


async def test_per_call_observer_and_failing_observer_do_not_break_the_call() -> None:
    extra: list[JiraCall] = []

    async def broken(call: JiraCall) -> None:
        raise RuntimeError("database down")

    async def collect(call: JiraCall) -> None:
        extra.append(call)

    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.get(f"{API}/myself").mock(return_value=httpx.Response(200, json={"name": "jdoe"}))
        client = JiraClient(http, gate=NoGate(), on_call=broken)
        user = await client.myself(make_target(), on_call=collect)
    assert user.name == "jdoe"
    assert len(extra) == 1 and extra[0].operation == "myself"


async def test_calls_are_counted_in_prometheus() -> None:
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.get(f"{API}/myself").mock(return_value=httpx.Response(200, json={"name": "jdoe"}))
        await make_client(http).client.myself(make_target())
    text = generate_latest(REGISTRY).decode()
    assert f'jira_requests_total{{instance="{INSTANCE.id}",method="GET",operation="myself",status="200"}}' in text
    assert "jira_request_duration_seconds_bucket" in text
    assert "rate_limiter_wait_seconds_bucket" in text
    for name in ("sync_outcomes_total", "sync_queue_length", "circuit_open"):
        assert f"# TYPE {name.removesuffix('_total')}" in text


async def test_cloud_worklog_bodies_match_atlassians_spec_and_carry_the_property() -> None:
    """What the client sends a Jira Cloud site validates against the Cloud platform REST v2 `Worklog` schema (the
    simulator's extract of Atlassian's spec), property included; a write names its issue to the gate (per-issue
    limits), and the issue's worklogs are listed with their properties."""
    from jirasim.cloud_spec import problems

    cloud_api = "https://api.example.test/ex/jira/c-1/rest/api/2"
    target = replace(make_target(base_url="https://api.example.test/ex/jira/c-1"), deployment=Deployment.CLOUD)
    marker = WorklogMarker("tenant-1", "4711")
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        post = mock.post(f"{cloud_api}/issue/PROJ-1/worklog").mock(return_value=httpx.Response(201, json=worklog(1)))
        put = mock.put(f"{cloud_api}/issue/PROJ-1/worklog/1").mock(return_value=httpx.Response(200, json=worklog(1)))
        listed = mock.get(f"{cloud_api}/issue/PROJ-1/worklog").mock(return_value=httpx.Response(200, json={
            "startAt": 0, "maxResults": 1, "total": 1, "worklogs": [{
                **worklog(7, "edited by hand"), "author": {"accountId": "5b10ac8d82e05b22cc7d4ef5"},
                "properties": [marker.as_property()]}]}))
        harness = make_client(http)
        await harness.client.create_worklog(target, "PROJ-1", BODY, marker=marker)
        await harness.client.update_worklog(target, "PROJ-1", "1", BODY, marker=marker)
        found = await harness.client.find_our_worklog(target, "PROJ-1", marker, author="5b10ac8d82e05b22cc7d4ef5")
    for route in (post, put):
        body = json.loads(route.calls.last.request.content)
        assert problems("Worklog", body) == [], body
        assert body["properties"] == [{"key": "timetracker", "value": {"tenant": "tenant-1", "entry": "4711"}}]
    assert listed.calls.last.request.url.params["expand"] == "properties"
    assert found is not None and found.id == "7"  # by its property, though the comment lost the anchor
    assert harness.gate.writes == ["PROJ-1", "PROJ-1", None]
