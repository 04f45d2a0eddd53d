"""`python -m workers`: one arq worker process. Start any number on any machines sharing Redis and PostgreSQL."""

from __future__ import annotations

import asyncio

import uvloop
from arq.worker import Worker

from app.config import get_settings
from workers.settings import worker_settings


def main() -> None:
    settings = get_settings()  # exits with one line naming a bad or missing variable
    asyncio.set_event_loop(uvloop.new_event_loop())  # the loop uvicorn runs the API on, too
    worker = Worker(**worker_settings(settings))
    worker.run()


if __name__ == "__main__":
    main()
