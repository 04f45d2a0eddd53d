"""REST v2 resources: shapes, validation and the worklog change feeds."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from jirasim.testing import SimServer

from .conftest import Jira, Keys, make_jira

STARTED_ERROR = "Invalid date format. Please enter the date in the format \"yyyy-MM-dd'T'HH:mm:ss.SSSZ\"."
WORKLOG_KEYS = {
    "self", "author", "updateAuthor", "comment", "created", "updated", "started",
    "timeSpent", "timeSpentSeconds", "id", "issueId",
}  # fmt: skip
USER_KEYS = {"self", "name", "key", "displayName", "active", "timeZone"}


def _instant(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def test_server_info_and_myself(alice: Jira) -> None:
    info = alice("GET", "serverInfo").json()
    assert info["version"] == "10.3.0"
    assert info["versionNumbers"] == [10, 3, 0]
    assert info["baseUrl"] == alice.base
    me = alice("GET", "myself").json()
    assert me["name"] == "alice"
    assert me["displayName"] == "Alice Example"
    assert me["timeZone"] == "Europe/Berlin"
    assert me["key"].startswith("JIRAUSER")


def test_issue_and_subtask(alice: Jira) -> None:
    parent = alice("GET", "issue/PROJ-1").json()
    assert parent["key"] == "PROJ-1"
    assert parent["fields"]["issuetype"]["subtask"] is False
    assert "parent" not in parent["fields"]
    sub = alice("GET", "issue/PROJ-2", params={"fields": "summary,issuetype,parent"}).json()
    assert set(sub["fields"]) == {"summary", "issuetype", "parent"}
    assert sub["fields"]["issuetype"]["subtask"] is True
    assert sub["fields"]["parent"]["key"] == "PROJ-1"
    by_id = alice("GET", f"issue/{sub['id']}").json()
    assert by_id["key"] == "PROJ-2"
    assert alice("GET", "issue/20001").json()["key"] == "OTHER-1"


def test_issue_404_body(alice: Jira) -> None:
    r = alice("GET", "issue/NOPE-9")
    assert r.status_code == 404
    assert r.json() == {"errorMessages": ["Issue Does Not Exist"], "errors": {}}
    assert alice("GET", "issue/NOPE-9/worklog").status_code == 404
    r = alice.add_worklog("NOPE-9")
    assert r.status_code == 404
    assert r.json() == {"errorMessages": ["Issue Does Not Exist"], "errors": {}}


@pytest.mark.parametrize("jql", ["parent=PROJ-1", "parent = PROJ-1", 'parent = "PROJ-1" ORDER BY key'])
def test_search_parent(alice: Jira, jql: str) -> None:
    r = alice("GET", "search", params={"jql": jql, "fields": "summary,parent"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["total"] == 2
    assert [i["key"] for i in data["issues"]] == ["PROJ-2", "PROJ-3"]
    assert set(data["issues"][0]["fields"]) == {"summary", "parent"}


def test_search_paging_and_errors(alice: Jira) -> None:
    page = alice("GET", "search", params={"jql": "parent=PROJ-1", "startAt": 1, "maxResults": 1}).json()
    assert (page["startAt"], page["maxResults"], page["total"]) == (1, 1, 2)
    assert [i["key"] for i in page["issues"]] == ["PROJ-3"]
    assert alice("GET", "search", params={"jql": "parent=PROJ-2"}).json()["total"] == 0
    missing = alice("GET", "search", params={"jql": "parent=NOPE-1"})
    assert missing.status_code == 400
    assert missing.json()["errorMessages"]
    assert alice("GET", "search", params={"jql": "assignee = bob"}).status_code == 400
    posted = alice("POST", "search", json={"jql": "parent = PROJ-1", "maxResults": 5})
    assert posted.json()["total"] == 2


def test_worklog_crud(alice: Jira, sim: SimServer) -> None:
    created = alice.add_worklog("PROJ-2", 5400, comment="first")
    assert created.status_code == 201
    wl = created.json()
    assert set(wl) == WORKLOG_KEYS
    assert USER_KEYS <= set(wl["author"])
    assert wl["author"]["name"] == "alice" and wl["updateAuthor"]["name"] == "alice"
    assert wl["timeSpent"] == "1h 30m" and wl["timeSpentSeconds"] == 5400
    assert isinstance(wl["id"], str) and wl["issueId"] == alice("GET", "issue/PROJ-2").json()["id"]
    assert wl["self"] == f"{alice.base}/rest/api/2/issue/{wl['issueId']}/worklog/{wl['id']}"
    assert wl["started"] == "2026-11-25T09:00:00.000+0100"  # jira1 renders in Europe/Berlin

    listing = alice("GET", "issue/PROJ-2/worklog").json()
    assert listing["total"] == 1 and listing["startAt"] == 0
    assert listing["worklogs"][0]["id"] == wl["id"]
    assert alice("GET", f"issue/PROJ-2/worklog/{wl['id']}").json() == wl

    updated = alice("PUT", f"issue/PROJ-2/worklog/{wl['id']}", json={"timeSpent": "2h", "comment": "edited"})
    assert updated.status_code == 200
    assert updated.json()["timeSpentSeconds"] == 7200
    assert updated.json()["comment"] == "edited"
    assert updated.json()["started"] == wl["started"]

    params = {"adjustEstimate": "leave"}
    deleted = alice("DELETE", f"issue/PROJ-2/worklog/{wl['id']}", params=params)
    assert deleted.status_code == 204
    assert alice("GET", f"issue/PROJ-2/worklog/{wl['id']}").status_code == 404
    assert sim.control.worklogs("jira1", "PROJ-2") == []


def test_worklog_paging(alice: Jira) -> None:
    ids = [alice.add_worklog("PROJ-1", 60 * (i + 1)).json()["id"] for i in range(5)]
    page = alice("GET", "issue/PROJ-1/worklog", params={"startAt": 2, "maxResults": 2}).json()
    assert (page["startAt"], page["maxResults"], page["total"]) == (2, 2, 5)
    assert [w["id"] for w in page["worklogs"]] == ids[2:4]
    everything = alice("GET", "issue/PROJ-1/worklog").json()
    assert [w["id"] for w in everything["worklogs"]] == ids


def test_worklog_wrong_issue_is_404(alice: Jira) -> None:
    wl = alice.add_worklog("PROJ-2").json()
    assert alice("GET", f"issue/PROJ-3/worklog/{wl['id']}").status_code == 404


def test_display_timezone(sim: SimServer, keys: Keys) -> None:
    jira = make_jira(sim, keys, "jira2", "alice")
    wl = jira.add_worklog("PROJ-1", 3600, started="2026-11-25T09:00:00.000+0100").json()
    assert wl["started"] == "2026-11-25T03:00:00.000-0500"
    assert _instant(wl["started"]) == _instant("2026-11-25T09:00:00.000+0100")
    sim.control.set_settings("jira2", display_timezone="UTC")
    again = jira("GET", f"issue/PROJ-1/worklog/{wl['id']}").json()
    assert again["started"] == "2026-11-25T08:00:00.000+0000"
    jira.close()


def test_permissions(alice: Jira, bob: Jira) -> None:
    wl = alice.add_worklog("PROJ-1").json()
    assert bob("GET", f"issue/PROJ-1/worklog/{wl['id']}").status_code == 200
    edit = bob("PUT", f"issue/PROJ-1/worklog/{wl['id']}", json={"comment": "mine now"})
    assert edit.status_code == 403
    assert edit.json() == {"errorMessages": ["You do not have the permission to edit this worklog."], "errors": {}}
    delete = bob("DELETE", f"issue/PROJ-1/worklog/{wl['id']}")
    assert delete.status_code == 403
    assert delete.json()["errorMessages"]


@pytest.mark.parametrize(
    "started",
    [
        "2026-11-25T09:00:00.000Z",
        "2026-11-25T09:00:00.000",
        "2026-11-25T09:00:00+0100",
        "2026-11-25T09:00:00.000+01:00",
    ],
)
def test_started_validation(alice: Jira, started: str) -> None:
    r = alice.add_worklog("PROJ-1", started=started)
    assert r.status_code == 400
    assert r.json() == {"errorMessages": [], "errors": {"started": STARTED_ERROR}}


@pytest.mark.parametrize("body", [{"timeSpentSeconds": 59}, {"timeSpentSeconds": 0}, {}])
def test_time_spent_validation(alice: Jira, body: dict[str, object]) -> None:
    body["started"] = "2026-11-25T09:00:00.000+0100"
    r = alice("POST", "issue/PROJ-1/worklog", json=body)
    assert r.status_code == 400
    assert r.json() == {"errorMessages": [], "errors": {"timeLogged": "You must indicate the time spent working."}}


def test_other_validation(alice: Jira) -> None:
    bad_duration = alice("POST", "issue/PROJ-1/worklog", json={"timeSpent": "lots"})
    assert bad_duration.status_code == 400
    assert "timeLogged" in bad_duration.json()["errors"]
    props = alice.add_worklog("PROJ-1", properties=[{"key": "k", "value": 1}])
    assert props.status_code == 400
    assert props.json()["errorMessages"]
    assert (
        alice("POST", "issue/PROJ-1/worklog", params={"adjustEstimate": "auto"}, json={"timeSpent": "1h"}).status_code
        == 201
    )
    wl = alice.add_worklog("PROJ-1").json()
    put = alice("PUT", f"issue/PROJ-1/worklog/{wl['id']}", json={"started": "2026-11-25T09:00:00Z"})
    assert put.status_code == 400 and "started" in put.json()["errors"]


def test_updated_feed(alice: Jira) -> None:
    since = int(time.time() * 1000) - 1
    first = alice.add_worklog("PROJ-1").json()
    second = alice.add_worklog("PROJ-2").json()
    feed = alice("GET", "worklog/updated", params={"since": since}).json()
    assert [v["worklogId"] for v in feed["values"]] == [int(first["id"]), int(second["id"])]
    assert all(v["properties"] == [] for v in feed["values"])
    assert feed["since"] == since
    assert feed["until"] == feed["values"][-1]["updatedTime"]
    assert feed["lastPage"] is True
    assert feed["self"].endswith(f"/rest/api/2/worklog/updated?since={since}")
    listed = alice("POST", "worklog/list", json={"ids": [v["worklogId"] for v in feed["values"]]}).json()
    assert [w["id"] for w in listed] == [first["id"], second["id"]]
    assert listed[0]["issueId"] == first["issueId"]


def test_deleted_feed(alice: Jira) -> None:
    wl = alice.add_worklog("PROJ-1").json()
    since = int(time.time() * 1000) - 1
    alice("DELETE", f"issue/PROJ-1/worklog/{wl['id']}")
    feed = alice("GET", "worklog/deleted", params={"since": since}).json()
    assert [v["worklogId"] for v in feed["values"]] == [int(wl["id"])]
    assert int(wl["id"]) not in [v["worklogId"] for v in alice("GET", "worklog/updated").json()["values"]]


def test_feeds_leave_out_the_last_minute(sim: SimServer, keys: Keys) -> None:
    jira = make_jira(sim, keys, "jira2", "alice")  # jira2 keeps JIRA's default 60 s
    wl = jira.add_worklog("PROJ-1").json()
    assert jira("GET", "worklog/updated", params={"since": 0}).json()["values"] == []
    jira("DELETE", f"issue/PROJ-1/worklog/{wl['id']}")
    assert jira("GET", "worklog/deleted", params={"since": 0}).json()["values"] == []
    sim.control.set_settings("jira2", feed_delay_seconds=1)
    before = time.monotonic()
    other = jira.add_worklog("PROJ-1").json()
    created = time.monotonic()
    fresh = jira("GET", "worklog/updated").json()["values"]
    if time.monotonic() - before < 0.9:  # on a very busy machine a second may already be over
        assert fresh == []
    time.sleep(max(0.0, created + 1.1 - time.monotonic()))
    values = jira("GET", "worklog/updated").json()["values"]
    assert [v["worklogId"] for v in values] == [int(other["id"])]
    assert [v["worklogId"] for v in jira("GET", "worklog/deleted").json()["values"]] == [int(wl["id"])]
    jira.close()


def test_feed_pages_of_1000(sim: SimServer, keys: Keys) -> None:
    inst = sim.sim.instances["jira1"]
    issue = inst.state.issues_by_key["PROJ-1"]
    for i in range(1001):  # straight into the model: 1001 REST calls would be slow
        wl = inst.state.create_worklog(issue, "alice", 0, 60)
        wl.updated_ms = 1_000_000 + i
    jira = make_jira(sim, keys)
    page = jira("GET", "worklog/updated", params={"since": 0}).json()
    assert len(page["values"]) == 1000
    assert page["lastPage"] is False
    assert page["until"] == 1_000_999
    assert page["nextPage"].endswith("/worklog/updated?since=1000999")
    rest = jira("GET", "worklog/updated", params={"since": page["until"]}).json()
    assert [v["updatedTime"] for v in rest["values"]] == [1_000_999, 1_001_000]
    assert rest["lastPage"] is True and "nextPage" not in rest
    jira.close()


def test_worklog_list_limits(alice: Jira) -> None:
    too_many = alice("POST", "worklog/list", json={"ids": list(range(1, 1002))})
    assert too_many.status_code == 400
    assert too_many.json()["errorMessages"]
    assert alice("POST", "worklog/list", json={"ids": list(range(1, 1001))}).status_code == 200
    assert alice("POST", "worklog/list", json={}).status_code == 400
    assert alice("POST", "worklog/list", json={"ids": [123456]}).json() == []


def test_json_content_type_required(alice: Jira) -> None:
    url = f"{alice.base}/rest/api/2/issue/PROJ-1/worklog"
    r = alice.http.post(url, content=b'{"timeSpentSeconds": 60}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.headers["X-AUSERNAME"] == "alice"


def test_username_header(sim: SimServer, alice: Jira) -> None:
    assert alice("GET", "myself").headers["X-AUSERNAME"] == "alice"
    assert alice("GET", "serverInfo").headers["X-AUSERNAME"] == "alice"
    assert sim.counters("jira1")["requests"] == 2
    assert sim.max_requests_in_any_window("jira1", 1.0) == 2


def test_a_client_that_goes_away_before_its_body_arrives_is_logged_and_the_server_goes_on(
        sim: SimServer, alice: Jira) -> None:
    import socket
    from urllib.parse import urlsplit

    base = urlsplit(alice.base)
    head = (f"POST {base.path}/rest/api/2/issue/PROJ-1/worklog HTTP/1.1\r\nHost: {base.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    with socket.create_connection((base.hostname, base.port)) as conn:
        conn.sendall(head.encode() + b'{"timeSpentSeconds": ')  # and no more: the client is gone

    def logged() -> list[dict[str, object]]:
        return [r for r in sim.control.log() if str(r["path"]).endswith("/issue/PROJ-1/worklog")]

    deadline = time.monotonic() + 10
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.05)
    [record] = logged()
    assert record["status"] == 0 and record["user"] is None  # no answer (a dropped request); nobody authenticated
    assert alice("GET", "issue/PROJ-1/worklog").json()["total"] == 0  # nothing written
    assert alice("GET", "myself").status_code == 200
