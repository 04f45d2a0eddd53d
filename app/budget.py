"""One process' budget of bytes held for others: request bodies being received, JIRA answers being read.

A limit per request bounds one request; a handful of concurrent ones (hostile callers, a hostile JIRA answered
by several look-ups at once) would still multiply it. Each reader's first `free` bytes cost nothing (nearly every
body and answer is far smaller); bytes beyond that are taken from a budget shared by the process, and a reader
that finds it exhausted waits — it stops reading, so TCP pushes back on its sender — until readers before it
are done. The oldest reader may always go on (up to its own limit), even past the budget: otherwise several
half-read readers could each wait for the others' bytes forever. So the process holds at most the budget plus
one limit, and every reader's turn comes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class BudgetExhausted(Exception):
    """No room in the budget within the reader's wait."""


class ByteBudget:
    def __init__(self, total: int, *, free: int = 64 * 1024) -> None:
        self.total = total
        self.free = free
        self.used = 0
        self._readers: list[Share] = []  # in the order they started
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def share(self, *, wait_seconds: float | None = None) -> AsyncIterator[Share]:
        """One reader's share, given back when the block ends; `wait_seconds` bounds each wait for room."""
        share = Share(self, wait_seconds)
        self._readers.append(share)
        try:
            yield share
        finally:
            self._readers.remove(share)
            async with self._changed:
                self.used -= share.taken
                self._changed.notify_all()

    async def _take(self, share: Share, size: int) -> None:
        async with self._changed:
            try:
                async with asyncio.timeout(share.wait_seconds):
                    await self._changed.wait_for(
                        lambda: self.used + size <= self.total or self._readers[0] is share)
            except TimeoutError:
                raise BudgetExhausted from None
            self.used += size


class Share:
    """What one reader holds so far."""

    def __init__(self, budget: ByteBudget, wait_seconds: float | None) -> None:
        self.budget = budget
        self.wait_seconds = wait_seconds
        self.size = 0
        self.taken = 0

    async def add(self, size: int) -> None:
        """Account for `size` more bytes held; waits while the budget has no room for them."""
        self.size += size
        beyond = max(0, self.size - self.budget.free - self.taken)
        if beyond:
            await self.budget._take(self, beyond)
            self.taken += beyond
