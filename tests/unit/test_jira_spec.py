"""Every request the client can send matches JIRA DC 10.3's OpenAPI description (bodies and query parameters)."""

from __future__ import annotations

import copy
import json
import re
from datetime import date, time
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from app.domain.worklog import build_worklog
from app.jira.client import JiraClient
from tests.unit.test_jira_support import BASE, make_client, make_target

# the spec lives beside the repository (`../shared/jira/`), where CI and every checkout have it
_CANDIDATES = [Path(__file__).resolve().parents[3] / "shared" / "jira" / "jira-dc-10.3-openapi.json",
               Path("/work/shared/jira/jira-dc-10.3-openapi.json")]
SPEC_PATH = next((p for p in _CANDIDATES if p.exists()), _CANDIDATES[0])
if not SPEC_PATH.exists():
    pytest.skip(f"JIRA DC OpenAPI spec not found at {SPEC_PATH}", allow_module_level=True)
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text())
SPEC_URI = "urn:jira-dc-10.3"


def _strict(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec's schemas never forbid unknown fields; a misspelt field must fail here, so forbid them."""
    strict = copy.deepcopy(spec)
    for schema in strict["components"]["schemas"].values():
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
    return strict


REGISTRY: Registry = Registry().with_resource(SPEC_URI, Resource.from_contents(_strict(SPEC), DRAFT7))


def operation_for(method: str, path: str) -> dict[str, Any]:
    """The spec's operation for a request path below `<base>/rest`."""
    for template, item in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return item[method.lower()]
    raise AssertionError(f"{method} {path} is not in the JIRA DC spec")


def check_against_spec(request: httpx.Request) -> None:
    path = request.url.path.removeprefix("/jira/rest")
    operation = operation_for(request.method, path)
    declared = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
    for name in request.url.params:
        assert name in declared, f"{request.method} {path}: query parameter {name} not in the spec"
    if request.url.params.get("adjustEstimate"):
        valid = re.search(r"Valid values are: ([a-z, ]+)", declared["adjustEstimate"]["description"])
        assert valid and request.url.params["adjustEstimate"] in [v.strip() for v in valid.group(1).split(",")]
    if request.content:
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        validator = Draft7Validator({"$ref": SPEC_URI + ref}, registry=REGISTRY)
        errors = [e.message for e in validator.iter_errors(json.loads(request.content))]
        assert not errors, f"{request.method} {path}: {errors}"
    else:
        assert "requestBody" not in operation or request.method in ("GET", "DELETE")


WORKLOG = {"id": "42", "issueId": "10001", "started": "2026-11-25T09:00:00.000+0100", "timeSpentSeconds": 60,
           "comment": "#1: a: b", "updated": "2026-11-25T09:00:00.000+0100"}


async def test_every_request_the_client_sends_matches_the_spec() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        path = request.url.path
        if path.endswith("/worklog/list"):
            return httpx.Response(200, json=[WORKLOG])
        if "/worklog/updated" in path or "/worklog/deleted" in path:
            return httpx.Response(200, json={"values": [], "since": 1, "until": 1, "lastPage": True})
        if path.endswith("/search"):
            return httpx.Response(200, json={"startAt": 0, "maxResults": 50, "total": 0, "issues": []})
        if path.endswith("/myself"):
            return httpx.Response(200, json={"name": "jdoe"})
        if request.method == "DELETE":
            return httpx.Response(204)
        if path.endswith("/worklog") and request.method == "GET":
            return httpx.Response(200, json={"startAt": 0, "maxResults": 1, "total": 1, "worklogs": [WORKLOG]})
        if "/worklog" in path:
            return httpx.Response(201 if request.method == "POST" else 200, json=WORKLOG)
        return httpx.Response(200, json={"id": "10001", "key": "PROJ-1", "fields": {"summary": "s"}})

    body = build_worklog(entry_id="4711", day=date(2026, 11, 25), start=time(9, 0), zone="Europe/Berlin",
                         duration_minutes=90, activity="Development", description="Fix login")
    async with respx.mock() as mock, httpx.AsyncClient() as http:
        mock.route(host="jira.example.test").mock(side_effect=answer)
        client: JiraClient = make_client(http).client
        target = make_target()
        await client.create_worklog(target, "PROJ-1", body)
        await client.update_worklog(target, "PROJ-1", "42", body)
        await client.delete_worklog(target, "PROJ-1", "42")
        await client.get_worklog(target, "PROJ-1", "42")
        await client.list_issue_worklogs(target, "PROJ-1")
        await client.worklog_list(target, ["42", "43"])
        await client.worklogs_updated_since(target, 1)
        await client.worklogs_deleted_since(target, 1)
        await client.get_issue(target, "PROJ-1")
        await client.list_subtasks(target, "PROJ-1")
        await client.myself(target)
    assert len(sent) == 11
    for request in sent:
        assert str(request.url).startswith(BASE + "/rest/api/2/")
        if request.url.path.endswith("/issue/PROJ-1/worklog") and request.method == "GET":
            continue  # startAt/maxResults: JIRA DC pages worklogs although 10.3's spec does not declare them
        check_against_spec(request)


def test_a_misspelt_worklog_field_would_be_caught() -> None:
    validator = Draft7Validator({"$ref": SPEC_URI + "#/components/schemas/worklog"}, registry=REGISTRY)
    assert list(validator.iter_errors({"comment": "x", "started": "s", "timeSpentSecond": 60}))
    assert list(validator.iter_errors({"comment": "x", "started": "s", "timeSpentSeconds": "60"}))
    ids = Draft7Validator({"$ref": SPEC_URI + "#/components/schemas/WorklogIdsRequestBean"}, registry=REGISTRY)
    assert list(ids.iter_errors({"ids": ["1"]}))
    assert not list(ids.iter_errors({"ids": [1, 2]}))
