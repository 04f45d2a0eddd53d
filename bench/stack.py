"""The processes a benchmark drives: PostgreSQL, Redis, one API, the simulator and N workers, all on loopback.

Every process of the service is started the way an operator would start it (`uvicorn`, `python -m workers`,
`python -m jirasim`), and a sampler thread records the peak RSS of the API and of each worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from devstack.servers import free_port
from devstack.testenv import API_SERVER_ARGS, TestStack, remove_stack_dir, start_test_stack
from jirasim.control import SimControl

ROOT = Path(__file__).resolve().parent.parent
ISSUES_PER_INSTANCE = 200

# the README's production command: one API process per core behind one port (`uvicorn --workers`)
API_PROCESSES = max(1, os.cpu_count() or 1)

# settings the benchmark gives every service process (the rest are the documented defaults)
QUIET = {"LOG_LEVEL": "WARNING", "LOG_FORMAT": "text"}
WORKER_DEFAULTS = {"RECONCILE_INTERVAL_SECONDS": "3600"}


# the service's 3LO app on the simulated Atlassian platform (the Jira Cloud run)
ATLASSIAN_APP = {"client_id": "tt-bench", "client_secret": secrets.token_urlsafe(24)}


def sim_instance(name: str, *, rate: float = 10, burst: int = 10, issues: int = ISSUES_PER_INSTANCE) -> dict[str, Any]:
    """A Data Center instance, or a Jira Cloud site when the name starts with `cloud` (Cloud's own limits)."""
    instance: dict[str, Any] = {
        "name": name, "display_timezone": "UTC", "feed_delay_seconds": 60,
        "users": [{"name": "jdoe", "timezone": "Europe/Berlin"}],
        "issues": [{"key": f"{project}-{i}", "summary": f"Issue {i}"} for i in range(1, issues + 1)
                   for project in ("PROJ", "OPS")],
    }
    if name.startswith("cloud"):
        return {**instance, "deployment": "cloud", "site_url": f"https://{name}.atlassian.net"}
    return {**instance, "authorize_mode": "approve", "approve_as": "jdoe", "rate_limit": {"rate": rate, "burst": burst}}


class PeakRss:
    """Samples the resident set size of named processes every `interval` seconds; keeps the peak per name."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.watched: dict[int, str] = {}
        self.peaks: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def watch(self, pid: int, name: str) -> None:
        with self._lock:
            self.watched[pid] = name

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            watched = dict(self.watched)
        for pid, name in watched.items():
            try:
                rss = psutil.Process(pid).memory_info().rss
            except psutil.Error:
                continue
            with self._lock:
                self.peaks[name] = max(self.peaks.get(name, 0), rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


@dataclass
class Workers:
    """`python -m workers` processes, like a supervisor would run them."""

    env: dict[str, str]
    rss: PeakRss
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, n: int) -> Workers:
        # BENCH_PROFILE_DIR=dir: each worker runs under cProfile and leaves dir/worker-<k>.prof when stopped
        # (for docs/performance.md; profiling costs CPU, so the figures of such a run are not the benchmark's)
        profile_dir = os.environ.get("BENCH_PROFILE_DIR")
        for k in range(n):
            profile = ["-m", "cProfile", "-o", f"{profile_dir}/worker-{k}.prof"] if profile_dir else []
            proc = subprocess.Popen([sys.executable, *profile, "-m", "workers"], env=self.env, cwd=ROOT,
                                    start_new_session=True)
            self.procs.append(proc)
            # one name per process: the report gives the largest single worker
            self.rss.watch(proc.pid, f"worker-{proc.pid}")
        return self

    def stop(self, timeout: float = 20) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.procs = []

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Bench:
    """One PostgreSQL, Redis, API process and simulator process for the whole benchmark run."""

    def __init__(self, instances: dict[str, dict[str, Any]], workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rss = PeakRss()
        self.stack: TestStack | None = None
        self.api_proc: subprocess.Popen[bytes] | None = None
        self.sim_proc: subprocess.Popen[bytes] | None = None
        self.instances = instances

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> Bench:
        self.stack = start_test_stack("bench")
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.env = {**os.environ, **self.stack.env, **QUIET, "PUBLIC_BASE_URL": self.api_url}
        self._start_sim()
        self.env.update({"ATLASSIAN_CLIENT_ID": ATLASSIAN_APP["client_id"],
                         "ATLASSIAN_CLIENT_SECRET": ATLASSIAN_APP["client_secret"],
                         "ATLASSIAN_AUTH_URL": f"{self.sim_url}/auth.atlassian.com",
                         "ATLASSIAN_API_URL": f"{self.sim_url}/api.atlassian.com"})
        self._start_api()
        return self

    def _start_sim(self) -> None:
        self.sim_port = free_port()
        config = self.workdir / "sim.json"
        config.write_text(json.dumps({
            "instances": [sim_instance(n, **o) for n, o in self.instances.items()],
            "atlassian": {"apps": [{**ATLASSIAN_APP, "name": "TimeTracker (bench)"}], "approve_as": "jdoe"}}))
        config.chmod(0o600)
        self.sim_proc = subprocess.Popen(
            [sys.executable, "-m", "jirasim", "--host", "127.0.0.1", "--port", str(self.sim_port), "--config",
             str(config), "--log-level", "warning"], cwd=ROOT, start_new_session=True,
            preexec_fn=_favour_the_simulator,
        )
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        self.sim = SimControl(self.sim_url, timeout=60)
        _wait(lambda: self.sim.health(), self.sim_proc, "simulator")

    def _start_api(self) -> None:
        self.api_proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", *API_SERVER_ARGS, "--host", "127.0.0.1",
             "--port", str(self.api_port), "--workers", str(API_PROCESSES), "--no-access-log",
             "--log-level", "warning"],
            env=self.env, cwd=ROOT, start_new_session=True,
        )

        def ready() -> None:
            httpx.get(f"{self.api_url}/readyz", timeout=2).raise_for_status()
            if len(self.api_pids()) < API_PROCESSES:
                raise RuntimeError("not every API process is up yet")

        _wait(ready, self.api_proc, "API")
        for pid in self.api_pids():
            self.rss.watch(pid, f"api-{pid}")

    def api_pids(self) -> list[int]:
        """The processes serving the API (uvicorn's worker processes; with one process, the server itself)."""
        assert self.api_proc is not None
        if API_PROCESSES == 1:
            return [self.api_proc.pid]
        children = psutil.Process(self.api_proc.pid).children()
        return [c.pid for c in children if "multiprocessing.resource_tracker" not in " ".join(c.cmdline())]

    def workers(self, **settings: Any) -> Workers:
        env = {**self.env, **WORKER_DEFAULTS, **{k.upper(): str(v) for k, v in settings.items()}}
        return Workers(env, self.rss)

    def stop(self) -> None:
        self.rss.stop()
        for proc in (self.api_proc, self.sim_proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if self.stack is not None:
            self.stack.stop()
            remove_stack_dir(self.stack)

    # -- reporting --------------------------------------------------------------------------------------------
    def peak_rss_mb(self) -> dict[str, float]:
        self.rss.sample()
        peaks = dict(self.rss.peaks)
        workers = [v for k, v in peaks.items() if k.startswith("worker-")]
        api = [v for k, v in peaks.items() if k.startswith("api-")]
        out = {"api": max(api, default=0) / 2**20, "api_processes": len(api)}
        if workers:
            out["worker"] = max(workers) / 2**20
            out["workers_sampled"] = len(workers)
        return out


def _favour_the_simulator() -> None:
    """A real JIRA runs on its own hardware; on this shared machine, scheduling priority is the closest thing, so
    the arrival times it records (what "never above the limit" is measured on) are not skewed by the load the
    service itself puts on the machine. (The tests' simulator process gets the same.)"""
    with contextlib.suppress(OSError):
        os.nice(-10)


def _wait(check: Any, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except Exception:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready within {timeout}s") from None
            time.sleep(0.2)
