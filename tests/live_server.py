"""A real uvicorn process on a free loopback port, on the test session's PostgreSQL and Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from devstack.testenv import API_SERVER_ARGS

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_api(env: dict[str, str], *, log_name: str = "live-api", public: bool = False) -> Iterator[str]:
    """Start `uvicorn app.main:app`, wait until /healthz answers, yield its base URL, stop it. With `public`, its
    PUBLIC_BASE_URL is its own address (OAuth callbacks a browser follows come back to it)."""
    with live_api_process(env, log_name=log_name, public=public) as (base, _):
        yield base


@contextmanager
def live_api_process(env: dict[str, str], *, log_name: str = "live-api",
                     public: bool = False) -> Iterator[tuple[str, subprocess.Popen]]:
    """`live_api`, yielding the process too (its pid, for resident-memory measurements)."""
    port = free_port()
    if public:
        env = {**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    out_dir = ROOT / "test-output"
    out_dir.mkdir(exist_ok=True)
    log = (out_dir / f"{log_name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", *API_SERVER_ARGS, "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log"],
        cwd=ROOT, env={**os.environ, **env, "LOG_FORMAT": "json"}, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited with {proc.returncode}; see test-output/{log_name}.log")
            try:
                if httpx.get(f"{base}/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not become healthy within 60 s")
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
