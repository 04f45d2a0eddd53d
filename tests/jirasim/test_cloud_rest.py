"""Jira Cloud sites behind the gateway: accountIds, worklog properties, Cloud-spec body checks, feeds,
admin webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from jirasim.testing import SimServer

from .conftest import CloudJira, Jira, Receiver, grant_cloud
from .test_webhooks import SECRET

PROPERTY = {"key": "timetracker", "value": {"tenant": "t-1", "entry": "4711"}}


def _account(sim: SimServer, name: str) -> str:
    return str(sim.control.atlassian()["accounts"][name])


def test_worklogs_name_people_by_account_id(sim: SimServer, acme: CloudJira) -> None:
    created = acme.add_worklog("PROJ-2", 5400, comment="#4711: Development: Fix login")
    assert created.status_code == 201, created.text
    worklog = created.json()
    author = worklog["author"]
    assert author["accountId"] == _account(sim, "alice") and author["accountType"] == "atlassian"
    assert "name" not in author and "key" not in author
    assert author["self"] == f"{acme.base}/rest/api/2/user?accountId={author['accountId']}"
    assert worklog["self"].startswith(f"{acme.base}/rest/api/2/issue/")
    assert worklog["started"] == "2026-11-25T09:00:00.000+0100"
    assert worklog["comment"] == "#4711: Development: Fix login"
    assert "properties" not in worklog
    assert created.headers["X-AACCOUNTID"] == author["accountId"]

    updated = acme("PUT", f"issue/PROJ-2/worklog/{worklog['id']}", json={"timeSpentSeconds": 1800})
    assert updated.status_code == 200 and updated.json()["timeSpentSeconds"] == 1800
    bob = CloudJira(sim, "acme", grant_cloud(sim, "bob")["access_token"])
    forbidden = bob("DELETE", f"issue/PROJ-2/worklog/{worklog['id']}")
    assert forbidden.status_code == 403
    assert acme("DELETE", f"issue/PROJ-2/worklog/{worklog['id']}").status_code == 204
    info = acme("GET", "serverInfo").json()
    assert info["deploymentType"] == "Cloud" and info["baseUrl"] == acme.base


def test_sites_are_separate_and_dc_instances_unchanged(sim: SimServer, acme: CloudJira, alice: Jira) -> None:
    globex = CloudJira(sim, "globex", acme.access_token)
    a = acme.add_worklog("PROJ-1").json()
    g = globex.add_worklog("PROJ-1").json()
    assert a["id"] == g["id"] and a["self"] != g["self"]  # separate sites, same account
    assert a["author"]["accountId"] == g["author"]["accountId"]
    dc = alice.add_worklog("PROJ-1").json()
    assert dc["author"]["name"] == "alice" and "accountId" not in dc["author"]
    assert len(sim.control.worklogs("acme", "PROJ-1")) == 1


def test_properties_on_create_and_expand_on_reads(sim: SimServer, acme: CloudJira) -> None:
    worklog = acme.add_worklog("PROJ-1", properties=[PROPERTY]).json()
    wid = worklog["id"]
    plain = acme("GET", f"issue/PROJ-1/worklog/{wid}").json()
    assert "properties" not in plain
    expanded = acme("GET", f"issue/PROJ-1/worklog/{wid}", params={"expand": "properties"}).json()
    assert expanded["properties"] == [PROPERTY]
    listed = acme("GET", "issue/PROJ-1/worklog", params={"expand": "properties"}).json()
    assert listed["worklogs"][0]["properties"] == [PROPERTY]
    by_id = acme("POST", "worklog/list", json={"ids": [int(wid)]}, params={"expand": "properties"}).json()
    assert by_id[0]["properties"] == [PROPERTY]
    feed = acme("GET", "worklog/updated", params={"since": 0, "expand": "properties"}).json()
    assert feed["values"][0]["properties"] == [PROPERTY]
    assert acme("GET", "worklog/updated", params={"since": 0}).json()["values"][0]["properties"] == []


def test_worklog_property_resource(sim: SimServer, acme: CloudJira) -> None:
    wid = acme.add_worklog("PROJ-1").json()["id"]
    url = f"issue/PROJ-1/worklog/{wid}/properties"
    assert acme("GET", url).json() == {"keys": []}
    assert acme("GET", f"{url}/timetracker").status_code == 404
    assert acme("PUT", f"{url}/timetracker", json=PROPERTY["value"]).status_code == 201
    assert acme("PUT", f"{url}/timetracker", json={"tenant": "t-1", "entry": "4712"}).status_code == 200
    got = acme("GET", f"{url}/timetracker")
    assert got.json() == {"key": "timetracker", "value": {"tenant": "t-1", "entry": "4712"}}
    keys = acme("GET", url).json()["keys"]
    assert keys == [{"self": f"{acme.base}/rest/api/2/{url.replace('PROJ-1', '10000')}/timetracker",
                     "key": "timetracker"}]
    bob = CloudJira(sim, "acme", grant_cloud(sim, "bob")["access_token"])
    assert bob("PUT", f"{url}/timetracker", json={"x": 1}).status_code == 403
    assert acme("DELETE", f"{url}/timetracker").status_code == 204
    assert acme("DELETE", f"{url}/timetracker").status_code == 404
    entry = sim.control.log("acme")[-1]
    assert entry["write"] is True and entry["issue_key"] == "PROJ-1"


def test_property_limits(acme: CloudJira) -> None:
    wid = acme.add_worklog("PROJ-1").json()["id"]
    url = f"issue/PROJ-1/worklog/{wid}/properties"
    assert acme("PUT", f"{url}/{'k' * 256}", json={"a": 1}).status_code == 400
    assert acme("PUT", f"{url}/big", json={"a": "x" * 32800}).status_code == 400
    too_long_key = acme.add_worklog("PROJ-1", properties=[{"key": "k" * 256, "value": 1}])
    assert too_long_key.status_code == 400 and "properties" in too_long_key.json()["errors"]


def test_bodies_are_checked_against_the_cloud_spec(sim: SimServer, acme: CloudJira) -> None:
    adf = {"type": "doc", "version": 1, "content": []}
    r = acme.add_worklog("PROJ-1", comment=adf)  # REST v3's comment on a v2 path
    assert r.status_code == 400
    assert r.json()["errorMessages"] == [
        f"Request body does not match Worklog: comment: {adf!r} is not of type 'string'"
    ]
    assert acme("POST", "issue/PROJ-1/worklog", json={"timeSpentSeconds": "3600"}).status_code == 400
    misspelt = acme.add_worklog("PROJ-1", properties=[{"key": "timetracker", "vaule": {}}])
    assert misspelt.status_code == 400 and "'vaule' was unexpected" in misspelt.json()["errorMessages"][0]
    assert acme("POST", "worklog/list", json={"ids": ["10000"]}).status_code == 400
    assert acme("POST", "search", json={"jql": "key = PROJ-1", "maxResult": 5}).status_code == 400
    assert acme("POST", "search", json={"jql": "key = PROJ-1", "maxResults": 5}).status_code == 200
    assert sim.control.worklogs("acme", "PROJ-1") == []


def test_issue_search_and_feeds(sim: SimServer, acme: CloudJira) -> None:
    issue = acme("GET", "issue/PROJ-2", params={"fields": "summary,parent"}).json()
    assert issue["fields"]["parent"]["key"] == "PROJ-1"
    found = acme("GET", "search", params={"jql": "parent = PROJ-1"}).json()
    assert [i["key"] for i in found["issues"]] == ["PROJ-2", "PROJ-3"]
    wid = acme.add_worklog("PROJ-1").json()["id"]
    sim.control.remote_delete("acme", wid)
    deleted = acme("GET", "worklog/deleted", params={"since": 0}).json()
    assert [v["worklogId"] for v in deleted["values"]] == [int(wid)]


def test_admin_webhooks_are_cloud_shaped_and_signed(sim: SimServer, acme: CloudJira, receiver: Receiver) -> None:
    sim.control.set_webhook("acme", receiver.url, SECRET)
    worklog = acme.add_worklog("PROJ-1", properties=[PROPERTY]).json()
    sim.control.remote_edit("acme", worklog["id"], comment="edited in Jira", as_user="bob")
    (h1, b1), (h2, b2) = receiver.wait_for(2)
    payloads: list[dict[str, Any]] = []
    for headers, body in ((h1, b1), (h2, b2)):
        assert headers["x-hub-signature"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        payloads.append(json.loads(body))
    created = next(p for p in payloads if p["webhookEvent"] == "worklog_created")["worklog"]
    edited = next(p for p in payloads if p["webhookEvent"] == "worklog_updated")["worklog"]
    assert created["author"]["accountId"] == _account(sim, "alice") and "name" not in created["author"]
    assert created["self"].startswith("https://acme.atlassian.net/rest/api/2/issue/")
    assert edited["updateAuthor"]["accountId"] == _account(sim, "bob")
    assert created["issueId"] == worklog["issueId"]
