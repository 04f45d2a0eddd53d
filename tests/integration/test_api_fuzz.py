"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis), with a valid key.

Every operation gets generated requests (valid and invalid); then sequences of calls follow the document's links
(an entry PUT then read, retried, deleted; an instance created then changed, connected, looked up in; the
changes feed read on). Every answer must be a documented status, with a documented content type, matching its
documented schema, and never a 500. Two minutes in all (issue 11 asks for two minutes at least).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

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
MAX_EXAMPLES = {GenerationMode.POSITIVE: int(os.environ.get("FUZZ_MAX_EXAMPLES", "20")),
                GenerationMode.NEGATIVE: int(os.environ.get("FUZZ_MAX_NEGATIVE_EXAMPLES", "12"))}
# the stateful phase runs scenario after scenario until this much time has passed
# (with the ~20 s of the per-operation phase, the fuzzer runs for two minutes at least)
STATEFUL_SECONDS = float(os.environ.get("FUZZ_STATEFUL_SECONDS", "105"))


@pytest.fixture(scope="module")
def fuzz_target(stack):
    """A live API and a tenant of its own (the fuzzer may create, change and delete anything). The tenant rate
    limit is raised so the fuzzer is not slowed to 429s (those are tested elsewhere)."""
    (ROOT / "test-output" / "fuzz-failures.txt").unlink(missing_ok=True)  # a report of an earlier run
    with live_api({**stack.env, "TENANT_API_RATE_PER_SECOND": "100000"}, log_name="fuzz-api") as base:
        made = subprocess.run([sys.executable, "-m", "app.cli", "create-tenant", "--name", "Fuzz"],
                              env={**os.environ, **stack.env}, capture_output=True, text=True, check=True,
                              timeout=60)
        key = json.loads(made.stdout)["api_key"]
        yield base, key


def _not_a_server_error(ctx, response, case):  # type: ignore[no-untyped-def]
    # 502 (JIRA failed) and 503 (a dependency or JIRA's rate limit) are answers about others, documented where
    # they can happen (status_code_conformance holds them to that); anything else from 500 up is our bug
    if response.status_code >= 500 and response.status_code not in (502, 503):
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
        _report(failures)


def _report(failures: list[str]) -> None:
    report = ROOT / "test-output" / "fuzz-failures.txt"
    report.write_text("\n\n".join(failures), encoding="utf-8")
    heads = [f.splitlines()[0] + " " + " | ".join(line.strip() for line in f.splitlines()
                                                 if line.strip().startswith(("- ST", "curl")))
             for f in failures]
    pytest.fail(f"{len(failures)} failures (details: {report}):\n" + "\n".join(heads))


def test_linked_call_sequences_conform_to_the_document(fuzz_target):
    """Stateful: scenarios of calls chained by the document's links, scenario after scenario for a while."""
    base, key = fuzz_target
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")

    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base, "headers": {"Authorization": f"Bearer {key}"}, "timeout": 30}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS)

    failures: list[str] = []
    scenarios = 0
    deadline = time.monotonic() + STATEFUL_SECONDS
    while time.monotonic() < deadline and len(failures) < 5:
        try:
            Workflow.run(settings=settings(max_examples=5, stateful_step_count=8, deadline=None, database=None,
                                           suppress_health_check=list(HealthCheck)))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            failures.append(f"### stateful scenario {scenarios}\n{exc}")
        scenarios += 1
    if failures:
        _report(failures)
