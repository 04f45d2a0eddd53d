"""docker-compose.yml kept true: what it names exists and fits together (no podman needed here).

test_image.py runs each app service's command and environment from the image; this module checks the rest:
every variable is a setting the service reads, the URLs point at the compose services with their credentials,
ports, networks, dependencies and grace periods fit, and the `postgres` and `redis` health checks (whose
images cannot be fetched here) work against real servers: the suite's PostgreSQL, and a Redis started with
compose's own command line.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.config import Settings, parse_encryption_keys
from devstack.servers import free_port, redis_binary
from tests.image import compose

ENV = {"ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode()}
APP_SERVICES = {"migrate", "jirasim", "api", "worker"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return compose.load(ENV)


def test_only_encryption_keys_must_be_given_and_compose_says_so() -> None:
    with pytest.raises(compose.MissingVariable, match="ENCRYPTION_KEYS"):
        compose.load({})
    # the value the header comment tells operators to generate is one the service accepts
    assert parse_encryption_keys("k1:" + base64.b64encode(os.urandom(32)).decode())[0].kid == "k1"


def test_the_app_services_run_this_image(spec: dict[str, Any]) -> None:
    assert set(compose.app_services(ENV)) == APP_SERVICES
    for name in APP_SERVICES:
        assert spec["services"][name]["build"] == "."
        assert spec["services"][name]["restart"] in {"no", "always", "on-failure", "unless-stopped"}
        assert spec["services"][name]["read_only"] is True  # test_image runs them so: they write nothing


def test_every_variable_the_app_services_set_is_a_setting_they_read() -> None:
    settings = {name.upper() for name in Settings.model_fields}
    for service in compose.app_services(ENV).values():
        unknown = set(service.environment) - settings
        assert not unknown, f"{service.name}: {sorted(unknown)} is read by nothing"
        Settings(**{k.lower(): v for k, v in service.environment.items()})  # and every value is valid


def test_database_and_redis_urls_name_the_compose_services_and_their_credentials(spec: dict[str, Any]) -> None:
    services = spec["services"]
    postgres = services["postgres"]["environment"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        db = urlsplit(env["DATABASE_URL"])
        assert (db.hostname, db.port, db.username, db.password, db.path) == (
            "postgres", 5432, postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], f"/{postgres['POSTGRES_DB']}")
        redis = urlsplit(env["REDIS_URL"])
        assert (redis.hostname, redis.port) == ("redis", 6379)
        assert "--port" not in services["redis"]["command"]  # so Redis listens on its default 6379


def test_the_api_lives_in_the_simulators_network_and_is_published_on_loopback(spec: dict[str, Any]) -> None:
    services = spec["services"]
    assert "command" not in services["api"], "the API runs the image's own command (uvicorn on UVICORN_PORT)"
    for name in ("api", "worker"):
        assert services[name]["network_mode"] == "service:jirasim"
    assert services["jirasim"]["ports"] == ["127.0.0.1:8000:8000"]  # test_image checks the image listens on 8000
    command = services["jirasim"]["command"]
    assert command[command.index("--host") + 1] == "127.0.0.1"
    base = urlsplit(services["api"]["environment"]["PUBLIC_BASE_URL"])
    assert (base.hostname, base.port) == ("127.0.0.1", 8000), "OAuth callbacks must reach the published port"


def _depends_on(service: dict[str, Any]) -> dict[str, dict[str, str]]:
    deps = service.get("depends_on") or {}
    return {name: {} for name in deps} if isinstance(deps, list) else dict(deps)


def test_dependencies_wait_for_what_they_need(spec: dict[str, Any]) -> None:
    services = spec["services"]
    for name, service in services.items():
        for dependency, how in _depends_on(service).items():
            target = services[dependency]
            condition = how.get("condition", "service_started")
            if condition == "service_healthy":
                assert target.get("healthcheck", {}).get("test"), f"{name} waits for {dependency}'s health check"
            elif condition == "service_completed_successfully":
                assert target["restart"] == "no", f"{dependency} must run once for {name} to start"
    for name in ("api", "worker"):
        assert _depends_on(services[name])["migrate"] == {"condition": "service_completed_successfully"}
        assert _depends_on(services[name])["redis"] == {"condition": "service_healthy"}
    assert _depends_on(services["migrate"])["postgres"] == {"condition": "service_healthy"}


def test_only_the_api_keeps_the_images_health_check(spec: dict[str, Any]) -> None:
    """The image's HEALTHCHECK asks :8000/healthz; the other processes do not serve it."""
    for name in APP_SERVICES - {"api"}:
        assert spec["services"][name]["healthcheck"] == {"disable": True}
    assert "healthcheck" not in spec["services"]["api"]


def test_workers_get_the_time_to_finish_their_pushes_on_stop(spec: dict[str, Any]) -> None:
    from workers.pushers import STOP_GRACE_SECONDS

    grace = spec["services"]["worker"]["stop_grace_period"]
    seconds = int(re.fullmatch(r"(\d+)s", grace)[1])  # type: ignore[index]
    assert seconds >= STOP_GRACE_SECONDS + 5


def test_postgres_health_check_answers_for_the_suites_postgresql(spec: dict[str, Any], stack: Any) -> None:
    kind, *test = spec["services"]["postgres"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    argv = shlex.split(test[0])
    bindir = Path(stack.postgres.extra["bindir"])
    assert (bindir / argv[0]).exists(), f"{argv[0]} is PostgreSQL's own tool"
    # the same check, pointed at the suite's server instead of compose's local socket
    done = subprocess.run([str(bindir / argv[0]), *argv[1:], "-h", "127.0.0.1", "-p", str(stack.postgres.port)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


def test_redis_runs_with_composes_command_and_its_health_check_answers(spec: dict[str, Any], tmp_path: Path) -> None:
    service = spec["services"]["redis"]
    server, *args = service["command"]
    kind, cli, *check = service["healthcheck"]["test"]
    assert (server, kind, cli) == ("redis-server", "CMD", "redis-cli")
    port = free_port()
    proc = subprocess.Popen([str(redis_binary()), *args, "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    redis_cli = [str(redis_binary().with_name(cli)), "-p", str(port)]
    try:
        deadline = time.monotonic() + 10
        while (answer := subprocess.run([*redis_cli, *check], capture_output=True, text=True).stdout.strip()) != "PONG":
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "redis-server exited"
            assert time.monotonic() < deadline, f"redis-cli {' '.join(check)}: {answer!r}"
            time.sleep(0.1)
        config = subprocess.run([*redis_cli, "CONFIG", "GET", "appendonly"], capture_output=True, text=True).stdout
        assert config.split() == ["appendonly", "no"]
    finally:
        proc.terminate()
        proc.wait(10)
