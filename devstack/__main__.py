"""`python -m devstack run` (what `make run` calls): the whole system on one machine, nothing prepared.

Starts embedded PostgreSQL and Redis under `.data/` unless DATABASE_URL / REDIS_URL are set, generates
ENCRYPTION_KEYS once into `.data/encryption_keys`, migrates, then runs the API on 127.0.0.1:8000, one
worker and (when the package is present) the JIRA simulator with demo data. Ctrl-C stops everything it
started; a second run reuses the data.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.servers import Server, start_postgres, start_redis
from devstack.testenv import API_SERVER_ARGS, SIMULATOR_NETWORK, migrate, new_encryption_keys

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data" / "run"
PG_PORT, REDIS_PORT, API_PORT, SIM_PORT = 55432, 56379, 8000, 8099


def _keys() -> str:
    if os.environ.get("ENCRYPTION_KEYS"):
        return os.environ["ENCRYPTION_KEYS"]
    path = DATA / "encryption_keys"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        path.write_text(new_encryption_keys())
        path.chmod(0o600)
    return path.read_text().strip()


def _wait_http(url: str, timeout: float = 30) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # same clean shutdown as Ctrl-C


def run(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    servers: list[Server] = []
    procs: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    try:
        if not env.get("DATABASE_URL"):
            pg = start_postgres(DATA / "postgres", PG_PORT, durable=True)
            servers.append(pg)
            env["DATABASE_URL"] = pg.url
        if not env.get("REDIS_URL"):
            redis = start_redis(DATA / "redis", REDIS_PORT)
            servers.append(redis)
            env["REDIS_URL"] = redis.url
        env["ENCRYPTION_KEYS"] = _keys()
        env.setdefault("LOG_FORMAT", "text")
        env.setdefault("JIRA_ALLOWED_NETWORKS", SIMULATOR_NETWORK)  # the bundled simulator, and nothing else local
        migrate(env["DATABASE_URL"])
        if not args.no_demo and not env.get("ATLASSIAN_CLIENT_ID"):
            from devstack.demo import atlassian_env

            # the demo's Jira Cloud site connects through a 3LO app of the simulated Atlassian platform
            env.update(atlassian_env(DATA, sim_port=SIM_PORT))
        py = sys.executable
        procs.append(subprocess.Popen([py, "-m", "uvicorn", "app.main:app", *API_SERVER_ARGS, "--host", "127.0.0.1",
                                       "--port", str(args.port), "--no-access-log"], env=env, cwd=ROOT))
        procs.append(subprocess.Popen([py, "-m", "workers"], env=env, cwd=ROOT))
        demo_lines: list[str] = []
        if not args.no_demo:
            from devstack.demo import start_demo

            demo_lines = start_demo(env, api_url=f"http://127.0.0.1:{args.port}", sim_port=SIM_PORT, procs=procs,
                                    data_dir=DATA)
        if not _wait_http(f"http://127.0.0.1:{args.port}/healthz"):
            print("the API did not come up; see the output above", file=sys.stderr)
            return 1
        print("\n" + "=" * 72)
        print(f"  API        http://127.0.0.1:{args.port}   (docs: /docs, dashboard: /dashboard)")
        print(f"  PostgreSQL {env['DATABASE_URL']}")
        print(f"  Redis      {env['REDIS_URL']}")
        for line in demo_lines:
            print(f"  {line}")
        print("  Ctrl-C stops everything started here; data stays in .data/run")
        print("=" * 72 + "\n", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        print("a process exited; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(25)
            except subprocess.TimeoutExpired:
                p.kill()
        for s in reversed(servers):
            s.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the whole system locally")
    r.add_argument("--port", type=int, default=API_PORT)
    r.add_argument("--no-demo", action="store_true", help="do not start the JIRA simulator and demo data")
    args = parser.parse_args()
    raise SystemExit(run(args))


if __name__ == "__main__":
    main()
