"""Where the CPU of an accepted change goes: `python -m bench.profile [put|webhook] [seconds]`.

Starts the benchmark's stack (PostgreSQL, Redis, the API as the production command, the simulator), makes the
ingest tenants, and samples one API process with py-spy (`--nonblocking`, 250 Hz, idle time left out) while the
load generator keeps 64 changes in flight. Each sample is put in the first category whose frames it contains
(`CATEGORIES`, checked in order); prints the table `docs/performance.md` quotes, and writes the raw stacks to
`.data/profile-<kind>.txt` (py-spy's collapsed format, for a flame graph).
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from bench import ingest
from bench.stack import ROOT, Bench

# (category, frame substrings): a sample counts for the first category one of whose substrings is in its stack
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("Redis: tenant rate limit", ("TenantRateLimit.check",)),
    ("Redis: wake the pushers (after commit)", ("RedisWake.wake", "dispatch.py")),
    ("PostgreSQL: connection from / back to the pool", ("AsyncAdapt_dbapi_connection.create", "AsyncSession.close",
                                                         "_connection_for_bind", "get_raw_connection",
                                                         "_ConnectionFairy", "pool/base.py", "pool/impl.py")),
    ("PostgreSQL: statements (driver, ORM, round trips)", ("asyncpg/", "sqlalchemy/engine", "sqlalchemy/orm/session",
                                                           "sqlalchemy/orm/persistence", "sqlalchemy/sql",
                                                           "sqlalchemy/dialects", "repositories/")),
    ("decisions and the entry aggregate (domain, ORM attributes)", ("app/domain/", "accept_change", "accept_delete",
                                                                    "sqlalchemy/orm/attributes",
                                                                    "sqlalchemy/orm/state")),
    ("entry views (answer and feed record)", ("entry_view",)),
    ("API key, webhook signature, tenant look-up", ("current_tenant", "verify_timetracker", "SecretBox.open",
                                                    "hash_api_key")),
    ("request body: JSON and validation", ("Request.body", "Request.json", "request_body_to_args", "pydantic/",
                                           "json/decoder", "json.loads")),
    ("answer: serialisation and socket write", ("serialize_response", "Response.__call__", "JSONResponse",
                                                "RequestResponseCycle.send", "json/encoder")),
    ("FastAPI dependencies (resolution)", ("solve_dependencies",)),
    ("HTTP parsing (h11)", ("/h11/", "H11Protocol")),
    ("middlewares, routing, framework", ("starlette/", "fastapi/", "uvicorn/", "app/observability.py",
                                         "app/api/body_limit.py")),
]
IDLE = ("multiprocessing/connection.py", "Thread._bootstrap")  # uvicorn's supervisor pipe: a thread that waits


def categorise(collapsed: Path) -> tuple[int, list[tuple[str, float]]]:
    """Samples (idle threads left out) and the share of each category, largest first."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or any(i in stack for i in IDLE):
            continue
        total += int(n)
        for name, needles in CATEGORIES:
            if any(needle in stack for needle in needles):
                counts[name] += int(n)
                break
        else:
            counts["event loop and the rest"] += int(n)
    return total, [(name, 100 * c / max(1, total)) for name, c in counts.most_common()]


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "put"
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    bench = Bench(["ingest"], ROOT / ".data" / "bench-profile")
    out = ROOT / ".data" / f"profile-{kind}.txt"
    try:
        bench.start()
        tenants = ingest.make_tenants(bench, ingest.TENANTS)
        pid = bench.api_pids()[0]
        recorder = subprocess.Popen([spy, "record", "--nonblocking", "-p", str(pid), "-r", "250", "-d",
                                     str(seconds), "-f", "raw", "-o", str(out)], stdout=subprocess.DEVNULL)
        result: dict[str, object] = {}
        load = threading.Thread(target=lambda: result.update(ingest.measured(
            bench, tenants, kind=kind, prefix=f"profile-{kind}", mode="closed", n=400 * seconds, concurrency=64)))
        load.start()
        recorder.wait()
        load.join()
    finally:
        bench.stop()
    total, shares = categorise(out)
    print(f"{kind}: {result.get('rate_per_s', 0):.0f}/s, API CPU {result.get('api_cpu_ms_per_change', 0):.2f} "
          f"ms/change (all processes), {total} samples of one API process")
    print("| where | share of the API process' CPU |\n|---|---|")
    for name, share in shares:
        print(f"| {name} | {share:.1f} % |")


if __name__ == "__main__":
    main()
