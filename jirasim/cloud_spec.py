"""Request bodies on Cloud paths are checked against Atlassian's Cloud platform REST specification.

Atlassian publishes the Cloud spec for REST v3 only; v2 differs in one place that matters here: a worklog
``comment`` is plain text instead of Atlassian Document Format. ``cloud_v2_schemas.json`` beside this module
is extracted from the spec (the schemas the simulator checks, with everything they reference, descriptions
dropped, ``Worklog.comment`` a string, and objects closed to unknown fields unless the spec opens them), plus
the spec's list of OAuth 2.0 scopes. Regenerate it with
``python -m jirasim.cloud_spec ../shared/jira/jira-cloud-platform-openapi.json``;
``tests/jirasim/test_cloud_spec.py`` checks that it still matches the spec.
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SCHEMAS_FILE = Path(__file__).with_name("cloud_v2_schemas.json")
ROOTS = ("Worklog", "WorklogIdsRequestBean", "SearchRequestBean", "EntityProperty")
_URI = "urn:jira-cloud-v2"
# uniqueItems marks a Java Set: Jira merges duplicates silently rather than refusing them
_DROPPED_KEYS = ("description", "example", "examples", "xml", "uniqueItems")


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _clean(node: Any) -> Any:
    if isinstance(node, dict):
        cleaned = {k: _clean(v) for k, v in node.items() if k not in _DROPPED_KEYS}
        if cleaned.get("type") == "object" and "properties" in cleaned:
            cleaned.setdefault("additionalProperties", False)  # a misspelt field must not pass unnoticed
        return cleaned
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The v2 request schemas (and the OAuth 2.0 scopes) the simulator checks, taken from the v3 spec."""
    schemas = spec["components"]["schemas"]
    wanted: set[str] = set()
    pending = list(ROOTS)
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        pending.extend(_refs(schemas[name]) - wanted)
    picked = {name: _clean(copy.deepcopy(schemas[name])) for name in sorted(wanted)}
    picked["Worklog"]["properties"]["comment"] = {"type": "string"}  # REST v2: plain text, not ADF
    flows = spec["components"]["securitySchemes"]["OAuth2"]["flows"]["authorizationCode"]
    return {
        "source": f"{spec['info']['title']} {spec['info']['version']}",
        "scopes": sorted(flows["scopes"]),
        "components": {"schemas": picked},
    }


@functools.cache
def _document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMAS_FILE.read_text())
    return data


@functools.cache
def _validator(schema: str) -> Draft7Validator:
    registry: Registry[Any] = Registry().with_resource(_URI, Resource.from_contents(_document(), DRAFT7))
    return Draft7Validator({"$ref": f"{_URI}#/components/schemas/{schema}"}, registry=registry)


def problems(schema: str, body: Any) -> list[str]:
    """Why ``body`` does not match the spec's ``schema`` ("<where>: <what>"), empty when it does."""
    errors = sorted(_validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(body)'}: {e.message}" for e in errors]


def oauth_scopes() -> frozenset[str]:
    """Every OAuth 2.0 scope the Cloud spec defines (plus offline_access, which asks for a refresh token)."""
    return frozenset(_document()["scopes"]) | {"offline_access"}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m jirasim.cloud_spec <jira-cloud-platform-openapi.json>", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text())
    SCHEMAS_FILE.write_text(json.dumps(extract(spec), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SCHEMAS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
