"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis), with a valid key.

Every operation gets generated requests (valid and invalid); every answer must be a documented status, with a
documented content type, matching its documented schema, and never a 5xx. Bounded so it runs in about a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.live_server import ROOT, live_api

# per operation: valid requests, then invalid ones (wrong types, missing fields, out-of-range values)
MAX_EXAMPLES = {GenerationMode.POSITIVE: int(os.environ.get("FUZZ_MAX_EXAMPLES", "15")),
                GenerationMode.NEGATIVE: int(os.environ.get("FUZZ_MAX_NEGATIVE_EXAMPLES", "10"))}


@pytest.fixture(scope="module")
def fuzz_target(stack):
    """A live API and a tenant of its own (the fuzzer may create, change and delete anything)."""
    with live_api(stack.env, log_name="fuzz-api") as base:
        made = subprocess.run([sys.executable, "-m", "app.cli", "create-tenant", "--name", "Fuzz"],
                              env={**os.environ, **stack.env}, capture_output=True, text=True, check=True,
                              timeout=60)
        key = json.loads(made.stdout)["api_key"]
        yield base, key


def _not_a_server_error(ctx, response, case):  # type: ignore[no-untyped-def]
    if response.status_code >= 500:
        raise AssertionError(f"answered {response.status_code}: {response.text[:500]}")


CHECKS = [_not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _operations(base: str) -> list:
    loaded = schemathesis.openapi.from_url(f"{base}/openapi.json")
    return [result.ok() for result in loaded.get_all_operations()]


def test_api_conforms_to_its_openapi_document(fuzz_target):
    base, key = fuzz_target
    operations = _operations(base)
    assert len(operations) >= 10
    failures: list[str] = []

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=MAX_EXAMPLES[mode], deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            def run(case):  # type: ignore[no-untyped-def]
                # a valid key everywhere, so generated requests get past authentication to the handlers
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
                case.call_and_validate(base_url=base, checks=CHECKS, timeout=30)

            try:
                run()
            except Unsatisfiable:
                pass  # nothing in this operation can be made invalid (no parameters, no body)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # collect them all: one report naming every broken operation
                failures.append(f"### {operation.method.upper()} {operation.path} ({mode.value})\n{exc}")
    if failures:
        report = ROOT / "test-output" / "fuzz-failures.txt"
        report.write_text("\n\n".join(failures), encoding="utf-8")
        heads = [f.splitlines()[0] + " " + " | ".join(line.strip() for line in f.splitlines()
                                                     if line.strip().startswith(("- ST", "curl")))
                 for f in failures]
        pytest.fail(f"{len(failures)} operations broke their contract (details: {report}):\n" + "\n".join(heads))
