"""Event-based waiting for tests: poll a condition, never sleep a fixed time and hope."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def wait_until(check: Callable[[], Any], *, timeout: float, interval: float = 0.25,
                     tick: Callable[[], Any] | None = None) -> Any:
    """Poll `check` (plain or async) until it returns something truthy; fail with its last value on timeout.

    The timeout only bounds a test that would otherwise hang: it is never what the test asserts.
    """
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if tick is not None:
            tick()
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
