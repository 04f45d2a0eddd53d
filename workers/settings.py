"""arq worker settings: jobs, lifecycle, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from typing import Any

from arq.connections import RedisSettings

from app.config import Settings, get_settings
from app.jira.warmup import warm_up
from app.logging_setup import bind_log_context, configure_logging
from app.observability import MetricsPublisher
from workers.context import build_context
from workers.jobs import push_entry, sweeper_loop
from workers.reconcile import reconcile_loop

log = logging.getLogger("workers")


def worker_settings(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for `arq.Worker` built from our settings."""
    settings = settings or get_settings()

    async def startup(ctx: dict[str, Any]) -> None:
        configure_logging(settings)
        ctx["wc"] = build_context(settings)
        ctx["background"] = [asyncio.create_task(sweeper_loop(ctx)), asyncio.create_task(reconcile_loop(ctx))]
        # nobody scrapes a worker: its counters go to Redis, and the API's /metrics serves the fleet's sums
        ctx["metrics"] = MetricsPublisher(ctx["wc"].redis, role="worker",
                                          samplers=ctx["wc"].runtime.history_samplers())
        ctx["metrics"].start()
        await warm_up()
        # everything built so far lives as long as the process: keep it out of the collector's way, so a
        # full collection cannot stall a request between its rate-limit grant and its arrival at JIRA
        gc.collect()
        gc.freeze()
        log.info("worker started (concurrency %d)", settings.worker_concurrency)

    async def shutdown(ctx: dict[str, Any]) -> None:
        for task in ctx.get("background", []):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if "metrics" in ctx:
            await ctx["metrics"].stop()
        if "wc" in ctx:
            await ctx["wc"].close()
        log.info("worker stopped")

    async def job_start(ctx: dict[str, Any]) -> None:
        # runs in the job's own task: every line the push logs carries its entry (job id push:<tenant>:<entry>)
        job_id = str(ctx.get("job_id", ""))
        kind, _, rest = job_id.partition(":")
        tenant_id, _, entry_id = rest.partition(":")
        if kind == "push" and entry_id:
            bind_log_context(job_id=job_id, tenant_id=tenant_id, entry_id=entry_id)
        else:
            bind_log_context(job_id=job_id)

    return {
        "functions": [push_entry],
        "on_startup": startup,
        "on_shutdown": shutdown,
        "on_job_start": job_start,
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "max_jobs": settings.worker_concurrency,
        # a push is a few JIRA requests; a killed worker's job comes back after this + 10 s
        "job_timeout": settings.push_job_timeout_seconds,
        # results are not needed, and a kept result would block the entry's job id from being queued again
        "keep_result": 0,
        # we count attempts ourselves (only real JIRA failures count); arq's retries are just scheduling
        "max_tries": 1_000_000,
        # SIGTERM: stop taking jobs, let in-flight pushes finish (bounded), leave the rest queued
        "job_completion_wait": 20,
        "poll_delay": 0.1,
        "retry_jobs": True,
    }
