"""What a worker process holds (passed to its loops, never module globals)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass

import httpx
from redis.asyncio import Redis

from app.bootstrap import Runtime, build
from app.clock import now_utc
from app.config import Settings
from app.db.repositories import entries as repo
from app.domain.entry_sync import EntrySync
from app.services.dispatch import PushWake
from app.services.push import InstancePusher, PushDeps, settle_unrouted


def process_id(role: str = "worker") -> str:
    """A name for this process that no other process shares (it holds leases under it)."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class WorkerContext:
    runtime: Runtime  # the process's shared objects (app.bootstrap)
    deps: PushDeps
    holder: str  # this process' name in the leases it holds

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def redis(self) -> Redis:
        return self.runtime.redis

    @property
    def http(self) -> httpx.AsyncClient:
        return self.runtime.http

    @property
    def wake(self) -> PushWake | None:
        return self.deps.wake

    async def push(self, tenant_id: uuid.UUID, entry_id: str) -> float | None:
        """Push what is due now of the entry's instance, in this process, without a lease (tests and tools; the
        worker's pushers run under leases): None once the entry is no longer due, else the seconds until it is."""
        async with self.deps.sessionmaker() as session:
            row = await repo.get_entry(session, tenant_id, entry_id)
            instance_id = None if row is None else EntrySync(row, now=now_utc(), record=lambda e: None).push_instance
        if row is None or row.due_at is None:
            return None
        if instance_id is None:
            await settle_unrouted(self.deps)
        else:
            await InstancePusher(self.deps, instance_id, holder=self.holder).run(asyncio.Event(), until_idle=True)
        async with self.deps.sessionmaker() as session:
            row = await repo.get_entry(session, tenant_id, entry_id)
        if row is None or row.due_at is None:
            return None
        return max(0.05, (row.due_at - now_utc()).total_seconds())

    async def close(self) -> None:
        await self.runtime.close()


def build_context(settings: Settings, wake: PushWake | None = None) -> WorkerContext:
    """The worker's shared objects; pushers wake each other through `wake` (by default Redis pub/sub)."""
    runtime = build(settings, "worker")
    return WorkerContext(runtime, runtime.push_deps(wake or runtime.wake), process_id())
