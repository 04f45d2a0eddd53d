"""Settings (CONTRACT section 1): a bad or missing required setting stops the process with one line."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import parse_encryption_keys

ROOT = Path(__file__).resolve().parents[2]
KEY = base64.b64encode(bytes(range(32))).decode()
URLSAFE = base64.urlsafe_b64encode(bytes(range(200, 232))).decode().rstrip("=")


def test_encryption_keys_accept_standard_and_urlsafe_base64():
    keys = parse_encryption_keys(f"k1:{KEY}, k2:{URLSAFE}")
    assert [k.kid for k in keys] == ["k1", "k2"]
    assert keys[0].key == bytes(range(32)) and keys[1].key == bytes(range(200, 232))
    assert "key=" not in repr(keys[0]).replace("key=<redacted>", "")


@pytest.mark.parametrize("raw", ["", "k1", f"k1:{KEY[:-8]}", "k1:not base64!", f":{KEY}", f"k1:{KEY},k1:{KEY}"])
def test_bad_encryption_keys_are_refused(raw):
    with pytest.raises(ValueError):
        parse_encryption_keys(raw)


def run(module: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "ENCRYPTION_KEYS")}
    return subprocess.run([sys.executable, *module], env={**clean, **env}, cwd="/", capture_output=True,
                          text=True, timeout=60)


GOOD = {"DATABASE_URL": "postgresql+asyncpg://u@127.0.0.1:1/db", "REDIS_URL": "redis://127.0.0.1:1/0",
        "ENCRYPTION_KEYS": f"k1:{KEY}"}


@pytest.mark.parametrize(("missing", "bad"), [
    ("ENCRYPTION_KEYS", None), ("DATABASE_URL", None), ("REDIS_URL", None),
    ("ENCRYPTION_KEYS", "k1:short"), ("DATABASE_URL", "mysql://x"), ("SYNC_MAX_ATTEMPTS", "zero"),
])
@pytest.mark.parametrize("module", [["-m", "workers"], ["-m", "app.cli", "create-tenant", "--name", "x"]])
def test_process_stops_with_one_line_naming_the_variable(module, missing, bad):
    env = {k: v for k, v in GOOD.items() if k != missing}
    if bad is not None:
        env[missing] = bad
    result = run(module, {**env, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert missing in lines[0]
