"""A small per-process cache whose entries expire: what one process may trust for a few seconds without asking
PostgreSQL again (API keys, tenants, user-token signing secrets, the origins CORS allows)."""

from __future__ import annotations

import time
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

DEFAULT_MAX_ENTRIES = 10_000  # distinct keys one process remembers; beyond that the cache starts afresh


class TtlCache(Generic[K, V]):
    """Values by key for `ttl` seconds (monotonic clock); at most `max_entries` of them."""

    def __init__(self, ttl: float, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.ttl = ttl
        self._max = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            del self._entries[key]
            return None
        return hit[1]

    def put(self, key: K, value: V) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, value)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
