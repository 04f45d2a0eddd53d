"""`python -m workers`: one worker process. Start any number on any machines sharing Redis and PostgreSQL.

A worker pushes the due entries of the JIRA instances whose push leases it holds (`workers/pushers.py`), sweeps
for due entries nobody pushes (`workers/sweeper.py`, one worker per interval) and polls instances for JIRA-side
changes (`workers/reconcile.py`). SIGTERM (or Ctrl-C): it takes nothing new, lets the requests in flight finish
(at most 20 s), records their answers, gives its leases back and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

import uvloop

from app.config import Settings, get_settings
from app.jira.warmup import warm_up
from app.logging_setup import configure_logging
from app.observability import MetricsPublisher
from workers.context import build_context
from workers.pushers import PushFleet
from workers.reconcile import reconcile_loop
from workers.sweeper import sweeper_loop

log = logging.getLogger("workers")


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """The worker's life: start, serve until `stop` (SIGTERM/SIGINT), stop gracefully."""
    configure_logging(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    wc = build_context(settings)
    fleet = PushFleet(wc)
    # nobody scrapes a worker: its counters go to Redis, and the API's /metrics serves the fleet's sums
    publisher = MetricsPublisher(wc.redis, role="worker", samplers=wc.runtime.history_samplers())
    publisher.start()
    await warm_up()
    # everything built so far lives as long as the process: keep it out of the collector's way, so a full
    # collection cannot stall a request between its rate-limit grant and its arrival at JIRA
    gc.collect()
    gc.freeze()
    loops = [asyncio.create_task(fleet.listen()), asyncio.create_task(fleet.renew()),
             asyncio.create_task(reconcile_loop(wc))]
    # the first sweep only once wake-ups are heard, so the instances it wakes find this worker listening
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await fleet.listening.wait()
    loops.append(asyncio.create_task(sweeper_loop(wc)))
    log.info("worker %s started", wc.holder)
    try:
        await stop.wait()
    finally:
        log.info("worker stopping: in-flight requests finish, the rest stays due")
        for task in loops[2:]:
            task.cancel()
        await asyncio.gather(*loops[2:], return_exceptions=True)
        await fleet.shutdown()
        for task in loops[:2]:
            task.cancel()
        await asyncio.gather(*loops[:2], return_exceptions=True)
        await publisher.stop()
        await wc.close()
        log.info("worker stopped")


def main() -> None:
    settings = get_settings()  # exits with one line naming a bad or missing variable
    uvloop.run(run_worker(settings))  # the loop uvicorn runs the API on, too


if __name__ == "__main__":
    main()
