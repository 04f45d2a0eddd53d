"""`python -m workers`: one arq worker process. Start any number on any machines sharing Redis and PostgreSQL."""

from __future__ import annotations

import asyncio

from arq.worker import Worker

from app.config import get_settings
from workers.settings import worker_settings


def main() -> None:
    settings = get_settings()  # exits with one line naming a bad or missing variable
    asyncio.set_event_loop(asyncio.new_event_loop())
    worker = Worker(**worker_settings(settings))
    worker.run()


if __name__ == "__main__":
    main()
