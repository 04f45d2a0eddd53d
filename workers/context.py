"""What a worker process holds for its jobs (passed in arq's ctx, never module globals)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from redis.asyncio import Redis

from app.bootstrap import Runtime, build
from app.config import Settings
from app.services.push import PushDeps, PushEngine


@dataclass
class WorkerContext:
    runtime: Runtime  # the process's shared objects (app.bootstrap)
    deps: PushDeps
    push: PushEngine

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def redis(self) -> Redis:
        return self.runtime.redis

    @property
    def http(self) -> httpx.AsyncClient:
        return self.runtime.http

    async def close(self) -> None:
        await self.runtime.close()


def build_context(settings: Settings) -> WorkerContext:
    runtime = build(settings, "worker")
    deps = runtime.push_deps()
    return WorkerContext(runtime, deps, PushEngine(deps))
