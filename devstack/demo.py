"""Demo data for `make run`: filled in once the simulator, instances API and sync engine exist."""

from __future__ import annotations

import subprocess
from pathlib import Path


def start_demo(env: dict[str, str], *, api_url: str, sim_port: int, procs: list[subprocess.Popen[bytes]],
               data_dir: Path) -> list[str]:
    return []
