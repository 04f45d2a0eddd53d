"""docker-compose.yml as the tests read it: services with compose's own variable interpolation applied.

Docker Compose is not installed here (and its `postgres`/`redis` images cannot be fetched), so the tests read the
file themselves and run each app service's command from the image; interpolation follows the Compose
specification (`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `$$`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


class MissingVariable(ValueError):
    """A `${VAR:?message}` whose variable is unset (Compose refuses to start then)."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name, op, arg = m["name"], m["op"], m["arg"] or ""
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if missing else str(value)
        if op in (":?", "?"):
            if missing:
                raise MissingVariable(f"{name}: {arg}")
            return str(value)
        return value or ""

    return _VARIABLE.sub(one, text)


def _interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(n, env) for n in node]
    if isinstance(node, dict):
        return {k: _interpolate_tree(v, env) for k, v in node.items()}
    return node


def load_raw() -> dict[str, Any]:
    """The file as YAML (merge keys `<<: *app` resolved), before interpolation."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def load(env: Mapping[str, str]) -> dict[str, Any]:
    """The file after interpolation with `env` (what `docker compose config` would show)."""
    data: dict[str, Any] = _interpolate_tree(load_raw(), env)
    return data


@dataclass(frozen=True)
class Service:
    """One service as the image test runs it."""

    name: str
    command: list[str] | None  # None: the image's own CMD
    environment: dict[str, str]
    healthcheck_disabled: bool
    read_only: bool

    @classmethod
    def of(cls, name: str, spec: Mapping[str, Any]) -> Service:
        command = spec.get("command")
        if isinstance(command, str):
            raise AssertionError(f"{name}: use the exec form (a list) for command, as the Dockerfile does")
        env = spec.get("environment") or {}
        if isinstance(env, list):  # ["KEY=value", ...]
            env = dict(item.split("=", 1) for item in env)
        return cls(name, [str(c) for c in command] if command is not None else None,
                   {str(k): str(v) for k, v in env.items()}, bool((spec.get("healthcheck") or {}).get("disable")),
                   bool(spec.get("read_only")))


def app_services(env: Mapping[str, str], image: str = "tt-jira-sync:latest") -> dict[str, Service]:
    """The services that run this project's image, by name."""
    services = load(env)["services"]
    return {name: Service.of(name, spec) for name, spec in services.items() if spec.get("image") == image}
