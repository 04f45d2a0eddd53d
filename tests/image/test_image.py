"""The production image, built from the Dockerfile and run the way docker-compose.yml runs it.

Every app service of the compose file (migrate, jirasim, api, worker) runs from the image with compose's own
command and environment, against the suite's PostgreSQL and Redis on loopback. What compose cannot say here is
overridden, and only that: DATABASE_URL and REDIS_URL (compose's `postgres`/`redis` hosts do not exist; a fresh
database and Redis database of the suite's servers stand in), and UVICORN_PORT/UVICORN_HOST (all containers share
the host's network, so the API takes a free loopback port instead of 0.0.0.0:8000; compose's own JIRASIM_PORT
variable does the same for the simulator). A tenant is made with the CLI from the image, connected
through the OAuth dance with the simulator from the image, and five entries reach it through the containers.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as clock
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.config import Settings
from devstack.testenv import new_encryption_keys
from jirasim.control import SimControl
from tests.image import compose
from tests.image.conftest import BuiltImage
from tests.image.podman import Container, Podman, run_once
from tests.live_server import free_port

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "image_e2e"
REDIS_DB = 1  # the suite's other tests use database 0: keep their queues and this worker's apart
SIM_INSTANCE = "jira1"
BERLIN = ZoneInfo("Europe/Berlin")
ENTRIES = {f"img-{n}": {"user": "jdoe", "ticket": f"PROJ-{n}", "date": "2026-11-25", "start": f"{8 + n:02d}:00",
                        "duration": 15 * n, "timezone": "Europe/Berlin", "description": f"Image entry {n}",
                        "activity": "Development"} for n in range(1, 6)}


def wait_until(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def answers(url: str) -> bool:
    return httpx.get(url, timeout=2, trust_env=False).status_code == 200


# ---- the image itself -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inside(podman: Podman, image: BuiltImage) -> dict[str, Any]:
    """inspect_image.py's report, read as root without network from a container of the image."""
    script = (Path(__file__).parent / "inspect_image.py").read_text()
    done = subprocess.run(["podman", *podman.flags, "run", "--rm", "-i", "--user", "0", "--net=none",
                           "--no-healthcheck", image.id, "python", "-"], input=script, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_image_runs_as_an_unprivileged_user_that_cannot_change_its_code(podman: Podman, image: BuiltImage) -> None:
    assert podman.run("image", "inspect", "--format", "{{.Config.User}}", image.id).stdout.strip() == "10001:10001"
    done = podman.run("run", "--rm", "--net=none", "--no-healthcheck", image.id, "sh", "-c",
                      "id -u; id -g; for p in /srv /srv/app /srv/migrations /opt/venv/bin; do "
                      "test -w $p && echo writable $p; done; true")
    assert done.stdout.split() == ["10001", "10001"], done.stdout


def test_image_holds_no_compiler_no_tests_and_no_dev_packages(inside: dict[str, Any]) -> None:
    assert inside["compilers"] == [] and not inside["headers"]
    assert inside["test_files"] == []
    assert inside["dev_packages"] == [], "installed only for make test/make run, never in the image"


def test_image_holds_exactly_the_sources_it_needs(inside: dict[str, Any]) -> None:
    """What .dockerignore lets through: the service's packages and migrations; no tests, devstack, bench, docs."""
    expected = {"alembic.ini"}
    for top in ("app", "workers", "jirasim", "migrations"):
        expected |= {str(p.relative_to(ROOT)) for p in (ROOT / top).rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}
    expected.discard("jirasim/testing.py")  # the simulator's test helpers
    assert set(inside["srv_files"]) == expected


def test_image_holds_no_secrets(podman: Podman, image: BuiltImage, inside: dict[str, Any]) -> None:
    assert inside["secret_named"] == [] and inside["private_keys"] == [] and inside["issued_secrets"] == []
    env = json.loads(podman.run("image", "inspect", "--format", "{{json .Config.Env}}", image.id).stdout)
    names = [e.partition("=")[0] for e in env]
    assert not [n for n in names if re.search(r"KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL|REDIS_URL", n)], names
    history = podman.run("history", "--no-trunc", "--format", "{{.CreatedBy}}", image.id).stdout
    assert not re.search(r"ENCRYPTION_KEYS=|PASSWORD=|tts_|whsec_", history)


def test_image_config_is_what_compose_relies_on(podman: Podman, image: BuiltImage) -> None:
    config = json.loads(podman.run("image", "inspect", "--format", "{{json .Config}}", image.id).stdout)
    env = dict(e.split("=", 1) for e in config["Env"])
    published = compose.load({"ENCRYPTION_KEYS": "k1:x"})["services"]["jirasim"]["ports"]
    assert [p.rsplit(":", 1)[1] for p in published] == [env["UVICORN_PORT"]] == ["8000"]
    assert list(config["ExposedPorts"]) == ["8000/tcp"]
    assert config["Cmd"][:2] == ["uvicorn", "app.main:app"], "compose's api runs the image's command"
    health = json.loads(podman.run("image", "inspect", "--format", "{{json .HealthCheck}}", image.id).stdout)
    assert "UVICORN_PORT" in " ".join(health["Test"]), "the health check follows the API's port"


# ---- the compose services, from the image ---------------------------------------------------------------------


@dataclass
class System:
    services: dict[str, compose.Service]
    env: dict[str, str]  # what every container gets on top of its compose environment
    containers: dict[str, Container]
    api: str
    sim: str
    env_dir: Path

    def environment(self, service: str) -> dict[str, str]:
        return {**self.services[service].environment, **self.env}


def _psql(stack: Any, sql: str, database: str = DATABASE) -> str:
    psql = Path(stack.postgres.extra["bindir"]) / "psql"
    return subprocess.run([str(psql), "-h", "127.0.0.1", "-p", str(stack.postgres.port), "-U", "postgres",
                           "-d", database, "-tAc", sql], check=True, capture_output=True, text=True).stdout.strip()


def _create_database(stack: Any) -> str:
    """A fresh database on the suite's PostgreSQL (its own one is migrated already), and its URL."""
    _psql(stack, f"DROP DATABASE IF EXISTS {DATABASE}", database="postgres")
    _psql(stack, f"CREATE DATABASE {DATABASE}", database="postgres")
    return stack.env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{DATABASE}"


@pytest.fixture(scope="module")
def system(podman: Podman, image: BuiltImage, stack: Any, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[System]:
    from redis import Redis

    env_dir = tmp_path_factory.mktemp("image-env")
    api_port, sim_port = free_port(), free_port()
    # compose's own variables, as an operator's .env would set them
    services = compose.app_services({"ENCRYPTION_KEYS": new_encryption_keys(),
                                     "PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
                                     "JIRASIM_PORT": str(sim_port)})
    assert set(services) == {"migrate", "jirasim", "api", "worker"}
    redis_url = stack.env["REDIS_URL"].rsplit("/", 1)[0] + f"/{REDIS_DB}"
    with Redis.from_url(redis_url) as r:
        r.flushdb()
    env = {"DATABASE_URL": _create_database(stack), "REDIS_URL": redis_url}
    if "JIRA_ALLOWED_NETWORKS" not in services["api"].environment:
        # compose's simulator is on loopback, which egress rules refuse unless allowed: once the setting exists,
        # compose must allow it itself; before, the variable is read by nothing and harmless
        assert "jira_allowed_networks" not in Settings.model_fields, (
            "docker-compose.yml: add JIRA_ALLOWED_NETWORKS (the simulator's 127.0.0.1) to x-app's environment")
        env["JIRA_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    s = System(services, env, {}, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sim_port}", env_dir)

    migrated = run_once(podman, image.id, services["migrate"].command or [], s.environment("migrate"), env_dir,
                        read_only=services["migrate"].read_only)
    assert migrated.returncode == 0, migrated.stderr
    try:
        for name in ("jirasim", "api", "worker"):
            service = services[name]
            # the host network is shared: a free port, and loopback only (compose's network is private)
            extra = {"UVICORN_PORT": str(api_port), "UVICORN_HOST": "127.0.0.1"} if name == "api" else {}
            s.containers[name] = Container(podman, image.id, name, service.command,
                                           {**s.environment(name), **extra},
                                           healthcheck=not service.healthcheck_disabled,
                                           read_only=service.read_only).start(env_dir)
        wait_until(lambda: answers(f"{s.sim}/_sim/health"), timeout=60, what="the simulator from the image answers")
        wait_until(lambda: answers(f"{s.api}/healthz"), timeout=60, what="the API from the image answers /healthz")
        yield s
    finally:
        for c in s.containers.values():
            c.logs()
        podman.remove_ours()


@pytest.fixture(scope="module")
def tenant(podman: Podman, image: BuiltImage, system: System) -> dict[str, str]:
    """`docker compose run --rm api python -m app.cli create-tenant …`, as the README says."""
    done = run_once(podman, image.id, ["python", "-m", "app.cli", "create-tenant", "--name", "Image test",
                                       "--timezone", "Europe/Berlin"], system.environment("api"), system.env_dir,
                    read_only=system.services["api"].read_only)
    assert done.returncode == 0, done.stderr
    created: dict[str, str] = json.loads(done.stdout)
    assert set(created) >= {"tenant_id", "api_key", "webhook_secret"}
    return created


def test_migrate_service_brings_a_fresh_database_to_head(system: System, stack: Any) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_current_head()
    assert _psql(stack, "SELECT version_num FROM alembic_version") == head
    assert _psql(stack, "SELECT to_regclass('entries') IS NOT NULL") == "t"


def test_api_is_ready_and_its_health_check_passes(podman: Podman, system: System) -> None:
    assert httpx.get(f"{system.api}/readyz", timeout=5, trust_env=False).status_code == 200
    api = system.containers["api"]
    assert podman.run("healthcheck", "run", api.name, check=False).returncode == 0, "the image's HEALTHCHECK"
    uid = podman.run("exec", api.name, "python", "-c", "import os; print(os.getuid())").stdout.strip()
    assert uid == "10001"
    # compose's read_only: every service ran on a read-only root file system, without any tmpfs
    for c in system.containers.values():
        assert podman.run("inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", c.name).stdout.strip() == "true"
    assert system.containers["worker"].running()


@dataclass
class Connected:
    """The CLI's tenant with a JIRA instance on the simulator from the image, user jdoe connected as alice."""

    api: httpx.Client  # on the API from the image, with the tenant's key
    sim: SimControl
    instance: dict[str, Any]


@pytest.fixture(scope="module")
def connected(tenant: dict[str, str], system: System) -> Iterator[Connected]:
    headers = {"Authorization": f"Bearer {tenant['api_key']}"}
    with httpx.Client(base_url=system.api, headers=headers, timeout=30, trust_env=False) as api, \
            SimControl(system.sim) as sim:
        r = api.post("/api/v1/jira-instances", json={
            "name": "Simulated JIRA", "base_url": f"{system.sim}/{SIM_INSTANCE}", "consumer_key": "tt-image",
            "rate_limit_per_second": 10, "project_keys": ["PROJ"]})
        assert r.status_code == 201, r.text
        instance = r.json()
        sim.add_instance({
            "name": SIM_INSTANCE, "feed_delay_seconds": 0, "authorize_mode": "approve", "approve_as": "alice",
            "consumers": [{"consumer_key": "tt-image", "public_key_pem": instance["public_key_pem"]}],
            "users": [{"name": "alice", "display_name": "Alice Example", "timezone": "Europe/Berlin"}],
            "issues": [{"key": f"PROJ-{n}", "summary": f"Issue {n}"} for n in range(1, 7)]})

        # the dance: start at the API, approve at JIRA's authorize page, follow its redirect to our callback
        r = api.post(f"/api/v1/jira-instances/{instance['id']}/oauth/start", json={"user": "jdoe"})
        assert r.status_code == 200, r.text
        with httpx.Client(trust_env=False, timeout=30) as browser:
            page = browser.get(r.json()["authorize_url"])
            assert page.status_code == 302, page.text
            callback = page.headers["location"]
            assert urlsplit(callback).netloc == urlsplit(system.api).netloc, "PUBLIC_BASE_URL from compose"
            done = browser.get(callback)
        assert done.status_code == 200, done.text
        assert done.json() | {"jira_instance": None} == {"status": "connected", "user": "jdoe", "jira_instance": None,
                                                         "jira_username": "alice"}
        yield Connected(api, sim, instance)


def _entries(api: httpx.Client) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in api.get("/api/v1/entries", params={"user": "jdoe"}).json()["items"]}


def test_a_tenant_connected_through_the_oauth_dance_gets_five_entries_synced(
    connected: Connected, system: System,
) -> None:
    api, sim = connected.api, connected.sim
    for entry_id, body in ENTRIES.items():
        r = api.put(f"/api/v1/entries/{entry_id}", json=body)
        assert r.status_code == 202, r.text

    def all_synced() -> dict[str, dict[str, Any]] | None:
        items = _entries(api)
        return items if all(items.get(i, {}).get("sync", {}).get("status") == "synced" for i in ENTRIES) else None

    entries = wait_until(all_synced, timeout=90, what="five entries synced by the worker from the image")
    worklogs = {str(w["id"]): w for n in range(1, 6) for w in sim.worklogs(SIM_INSTANCE, f"PROJ-{n}")}
    assert len(worklogs) == 5
    for entry_id, body in ENTRIES.items():
        worklog = worklogs[entries[entry_id]["sync"]["worklog_id"]]
        assert worklog["comment"] == f"#{entry_id}: Development: {body['description']}"
        assert worklog["timeSpentSeconds"] == body["duration"] * 60
        started = datetime.strptime(worklog["started"], "%Y-%m-%dT%H:%M:%S.%f%z")
        assert started == datetime.combine(date(2026, 11, 25), clock.fromisoformat(body["start"]), BERLIN)
        assert worklog["author"]["name"] == "alice"

    # the worker's counts reach the API's /metrics through Redis (nobody scrapes a worker)
    def synced_metric() -> bool:
        text = httpx.get(f"{system.api}/metrics", timeout=5, trust_env=False).text
        return any(line.startswith("sync_outcomes_total{") and 'outcome="synced"' in line
                   and float(line.rsplit(" ", 1)[1]) >= 5 for line in text.splitlines())

    wait_until(synced_metric, timeout=30, what="sync_outcomes_total{outcome=synced} >= 5 on the API's /metrics")


def test_sigterm_lets_the_push_in_flight_finish_and_every_process_exits_cleanly(
    connected: Connected, system: System,
) -> None:
    """PID 1 of each container is the service itself: SIGTERM reaches it, and it exits 0 on its own; the worker
    first finishes the push it is in the middle of (JIRA answers it 3 s later)."""
    api, sim = connected.api, connected.sim
    sim.add_fault_rule(SIM_INSTANCE, "latency", latency_ms=3000, method="POST", path_contains="/worklog")
    body = {**ENTRIES["img-1"], "ticket": "PROJ-6", "description": "In flight at SIGTERM"}
    assert api.put("/api/v1/entries/img-6", json=body).status_code == 202
    wait_until(lambda: not sim.faults(SIM_INSTANCE)["rules"], timeout=60,
               what="the worker's POST of img-6 reached JIRA (and waits there for its answer)")

    worker = system.containers["worker"]
    assert worker.stop_with_sigterm() == 0
    assert _entries(api)["img-6"]["sync"]["status"] == "synced", "the push in flight was finished, not dropped"
    assert [w["comment"] for w in sim.worklogs(SIM_INSTANCE, "PROJ-6")] == ["#img-6: Development: In flight at SIGTERM"]

    exits = {name: c.stop_with_sigterm() for name, c in system.containers.items() if name != "worker"}
    assert exits == {"jirasim": 0, "api": 0}
    logs = {name: c.logs() for name, c in system.containers.items()}
    assert not [name for name, text in logs.items() if "Traceback" in text], logs
    assert "worker stopped" in logs["worker"]
