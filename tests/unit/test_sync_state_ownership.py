"""The entry aggregate (`app/domain/entry_sync.py`) is the only code that assigns an entry's sync fields.

A service that writes `row.due_at = …` itself bypasses the transitions' feed records and push hand-off; this
test reads every module of the service (not the tests' fixtures) and names each such assignment.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from app.domain.entry_sync import SYNC_FIELDS

ROOT = Path(__file__).resolve().parents[2]
OWNER = ROOT / "app" / "domain" / "entry_sync.py"
# The fields the check names: no service may assign an attribute so called, whatever the object.
SERVICE_PATTERN = re.compile(
    r"\.(due_at|synced_version|attempts|base|sync_status|worklog_id|synced_at|create_unconfirmed)\s*=[^=]"
)


def _sources() -> list[Path]:
    return sorted(p for d in ("app", "workers") for p in (ROOT / d).rglob("*.py") if p != OWNER)


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return [t for target in node.targets for t in _flatten(target)]
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return _flatten(node.target)
    return []


def _flatten(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, ast.Tuple | ast.List):
        return [t for element in target.elts for t in _flatten(element)]
    return [target]


def test_only_the_aggregate_assigns_sync_fields() -> None:
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(node):
                if isinstance(target, ast.Attribute) and target.attr in SYNC_FIELDS:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} assigns .{target.attr}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in SYNC_FIELDS):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} setattr(…, {node.args[1].value!r})")
    assert found == [], "assign sync fields only through app.domain.entry_sync.EntrySync:\n" + "\n".join(found)


def test_no_service_line_assigns_a_field_so_named() -> None:
    lines = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in sorted((ROOT / "app" / "services").rglob("*.py"))
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if SERVICE_PATTERN.search(line)]
    assert lines == []


def test_the_check_sees_assignments() -> None:
    tree = ast.parse("row.due_at = now\nrow.attempts += 1\na.worklog_id, a.base = 1, 2\nx: int = 1\n")
    attrs = [t.attr for node in ast.walk(tree) for t in _targets(node) if isinstance(t, ast.Attribute)]
    assert attrs == ["due_at", "attempts", "worklog_id", "base"]
    assert SERVICE_PATTERN.search("    row.base = None") and not SERVICE_PATTERN.search("if row.base == x:")
