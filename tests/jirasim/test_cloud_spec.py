"""The schemas the simulator checks Cloud bodies against are Atlassian's, as published in the Cloud spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jirasim.cloud_spec import SCHEMAS_FILE, extract, oauth_scopes, problems

# the spec lives beside the repository (`../shared/jira/`), where CI and every checkout have it
_CANDIDATES = [Path(__file__).resolve().parents[3] / "shared" / "jira" / "jira-cloud-platform-openapi.json",
               Path("/work/shared/jira/jira-cloud-platform-openapi.json")]
SPEC_PATH = next((p for p in _CANDIDATES if p.exists()), _CANDIDATES[0])


@pytest.mark.skipif(not SPEC_PATH.exists(), reason=f"Jira Cloud OpenAPI spec not found at {SPEC_PATH}")
def test_the_bundled_schemas_are_extracted_from_the_cloud_spec() -> None:
    spec = json.loads(SPEC_PATH.read_text())
    assert json.loads(SCHEMAS_FILE.read_text()) == extract(spec), (
        "jirasim/cloud_v2_schemas.json is stale: python -m jirasim.cloud_spec " + str(SPEC_PATH)
    )


def test_v2_worklog_bodies() -> None:
    body = {"comment": "#1: a: b", "started": "2026-11-25T09:00:00.000+0100", "timeSpentSeconds": 5400,
            "properties": [{"key": "timetracker", "value": {"tenant": "t", "entry": "1"}}]}
    assert problems("Worklog", body) == []
    assert problems("Worklog", {**body, "comment": {"type": "doc", "version": 1, "content": []}})  # v3's ADF
    assert problems("Worklog", {**body, "timeSpentSeconds": "5400"})
    assert problems("Worklog", {**body, "visibility": {"type": "everyone"}})
    assert problems("WorklogIdsRequestBean", {"ids": [1, 2]}) == []
    assert problems("WorklogIdsRequestBean", {"ids": [1, 1]}) == []  # a Set in Jira: duplicates merge
    assert problems("WorklogIdsRequestBean", {"ids": ["1"]})
    assert {"read:jira-work", "write:jira-work", "read:jira-user", "offline_access"} <= oauth_scopes()
