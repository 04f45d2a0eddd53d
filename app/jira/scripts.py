"""The Lua scripts of the coordination layer (the request gate: rate budgets and circuit; leases and locks).

Each script is a `.lua` file in `app/jira/lua/` (package data). A first line `--! needs: clock effective_rate`
puts those shared pieces in front of it, in that order: `clock` is the one preamble that reads Redis' clock
(`now`, µs) and defines `fmt`, so every script measures time the same way and machine clocks never matter.
"""

from __future__ import annotations

import functools
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_NEEDS = "--! needs:"


def _read(name: str) -> str:
    return (files("app.jira") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


@functools.cache
def source(name: str) -> str:
    """The full text of script `name`: the pieces it needs, then its own body."""
    body = _read(name)
    first, _, rest = body.partition("\n")
    if not first.startswith(_NEEDS):
        return body
    pieces = [_read(piece) for piece in first[len(_NEEDS):].split()]
    return "\n".join([*pieces, rest])


def as_text(value: object) -> str:
    """A script's string answer (redis-py hands back bytes unless the client decodes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def register(redis: Redis, name: str) -> AsyncScript:
    """The script as redis-py's EVALSHA wrapper (the script is loaded once per Redis when missing)."""
    return redis.register_script(source(name))
