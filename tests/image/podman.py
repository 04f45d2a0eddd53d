"""podman for the image tests: find it (installing it where `../shared/tools/container-base` can), build the
image, run containers on the host network (they reach only the suite's loopback servers) and stop them.

Every container carries the label `tt-jira-sync.test.pid=<pytest's pid>`, so a session removes what it started
and what a killed session left behind (containers on the host network would otherwise keep their ports).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test-output"
LABEL = "tt-jira-sync.test.pid"
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# the recipe lives beside the checkout (`../shared/tools/`), where CI and every checkout have it; `make test`
# passes its path in CONTAINER_BASE
_RECIPE_CANDIDATES = [ROOT.parent / "shared" / "tools" / "container-base",
                      Path("/work/shared/tools/container-base")]


class PodmanUnavailable(RuntimeError):
    """podman cannot run here at all (the reason is the message): the image tests skip."""


def container_base_recipe() -> Path | None:
    named = os.environ.get("CONTAINER_BASE")
    candidates = [Path(named)] if named else _RECIPE_CANDIDATES
    return next((p for p in candidates if p.is_file()), None)


def podman_flags() -> list[str]:
    """The global podman flags for this machine: what the recipe prints when we may run it (root), else none."""
    recipe = container_base_recipe()
    if recipe is not None and os.geteuid() == 0:
        done = subprocess.run(["bash", str(recipe)], capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise PodmanUnavailable(f"{recipe} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return done.stdout.strip().splitlines()[-1].split() if done.stdout.strip() else []
    if shutil.which("podman") is None:
        if recipe is None:
            raise PodmanUnavailable("podman is not installed, and ../shared/tools/container-base (which installs it) "
                                    "is not beside the checkout")
        raise PodmanUnavailable(f"podman is not installed, and {recipe} installs it only as root")
    return []


@dataclass
class Podman:
    flags: list[str]
    pid_label: str = field(default_factory=lambda: str(os.getpid()))

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["podman", *self.flags, *args], capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:3])} … exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def check_usable(self) -> None:
        done = self.run("info", "--format", "{{.Host.OCIRuntime.Name}}", check=False, timeout=60)
        if done.returncode != 0:
            raise PodmanUnavailable(f"`podman info` fails here: {done.stderr.strip()[-500:]}")
        if self.run("image", "exists", BASE_IMAGE, check=False).returncode != 0:
            raise PodmanUnavailable(f"the base image {BASE_IMAGE} is missing and cannot be built here "
                                    "(../shared/tools/container-base builds it, as root)")

    def remove_leftovers(self) -> None:
        """Containers of test sessions that no longer run (killed before their teardown)."""
        listed = self.run("ps", "-a", "--filter", f"label={LABEL}", "--format",
                          f'{{{{.ID}}}} {{{{index .Labels "{LABEL}"}}}}').stdout.split("\n")
        for line in filter(None, listed):
            cid, _, pid = line.partition(" ")
            if pid != self.pid_label and not _alive(pid):
                self.run("rm", "-f", cid, check=False)

    def remove_ours(self) -> None:
        ids = self.run("ps", "-aq", "--filter", f"label={LABEL}={self.pid_label}").stdout.split()
        if ids:
            self.run("rm", "-f", "-t", "0", *ids, check=False, timeout=60)

    def build(self, tag: str, log: Path) -> tuple[str, float]:
        """Build the Dockerfile (the command from docs/operations.md); returns (image id, seconds)."""
        iidfile = log.with_suffix(".iid")
        args = ["build", "--pull=never", "--network", "host", "--format", "docker", "--iidfile", str(iidfile)]
        if CA_BUNDLE.exists():  # lets pip inside the build reach the package index the way this machine does
            args += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
        started = time.monotonic()
        with log.open("w") as out:
            done = subprocess.run(["podman", *self.flags, *args, "-t", tag, str(ROOT)], stdout=out,
                                  stderr=subprocess.STDOUT, timeout=900)
        seconds = time.monotonic() - started
        if done.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"the image build failed ({done.returncode}); {log}:\n{tail}")
        return iidfile.read_text().strip().removeprefix("sha256:"), seconds

    def image_size(self, ref: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())


@dataclass
class Container:
    """A detached container of the image on the host network."""

    podman: Podman
    image: str
    role: str
    command: list[str] | None
    env: dict[str, str]
    healthcheck: bool = False
    read_only: bool = False
    name: str = ""

    def start(self, env_dir: Path) -> Container:
        self.name = f"ttsync-test-{self.podman.pid_label}-{self.role}"
        self.podman.run("rm", "-f", self.name, check=False)
        env_file = _env_file(env_dir / f"{self.role}.env", self.env)
        args = ["run", "-d", "--name", self.name, "--label", f"{LABEL}={self.podman.pid_label}", "--net=host",
                "--env-file", str(env_file)]
        if not self.healthcheck:
            args.append("--no-healthcheck")
        if self.read_only:  # a read-only root file system, and no tmpfs either: nothing may be written
            args += ["--read-only", "--read-only-tmpfs=false"]
        self.podman.run(*args, self.image, *(self.command or []))
        return self

    def running(self) -> bool:
        state = self.podman.run("inspect", "--format", "{{.State.Status}}", self.name, check=False).stdout.strip()
        return state == "running"

    def logs(self) -> str:
        done = self.podman.run("logs", self.name, check=False)
        text = done.stdout + done.stderr
        (OUT / f"image-{self.role}.log").write_text(text)
        return text

    def stop_with_sigterm(self, timeout: float = 45) -> int:
        """SIGTERM to the container's process (PID 1), then its exit code."""
        self.podman.run("kill", "--signal", "TERM", self.name)
        return int(self.podman.run("wait", self.name, timeout=timeout).stdout.strip())


def run_once(podman: Podman, image: str, command: list[str], env: dict[str, str], env_dir: Path,
             *, read_only: bool, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`docker compose run --rm SERVICE COMMAND`: one process in a fresh container, its output and exit code."""
    env_file = _env_file(env_dir / "run-once.env", env)
    args = ["run", "--rm", "--label", f"{LABEL}={podman.pid_label}", "--net=host", "--no-healthcheck",
            "--env-file", str(env_file)]
    if read_only:
        args += ["--read-only", "--read-only-tmpfs=false"]
    return podman.run(*args, image, *command, timeout=timeout, check=False)


def _env_file(path: Path, env: dict[str, str]) -> Path:
    for key, value in env.items():
        if "\n" in value:
            raise ValueError(f"{key}: an env file cannot hold a newline")
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    path.chmod(0o600)
    return path


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
