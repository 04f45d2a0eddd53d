"""The production image for the tests marked `image`: built once per session from the Dockerfile with podman.

`podman` skips (with the reason) only where podman cannot run at all: not installed and not installable (the
recipe `../shared/tools/container-base` needs root and apt-get), or `podman info` failing. Everywhere else, a
failing build fails the tests. The image's size and build time are printed at the end of the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from tests.image.podman import BASE_IMAGE, OUT, Podman, PodmanUnavailable, podman_flags

TAG = "tt-jira-sync:test"


@dataclass(frozen=True)
class BuiltImage:
    id: str
    build_seconds: float
    size_bytes: int
    base_size_bytes: int

    @property
    def added_bytes(self) -> int:
        """What the Dockerfile adds to the base image (the stand-in base here is larger than the official one)."""
        return self.size_bytes - self.base_size_bytes


_report: dict[str, Any] = {}


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    try:
        p = Podman(podman_flags())
        p.check_usable()
    except PodmanUnavailable as exc:
        pytest.skip(f"image tests need podman: {exc}")
    p.remove_leftovers()
    yield p
    p.remove_ours()


@pytest.fixture(scope="session")
def image(podman: Podman) -> BuiltImage:
    OUT.mkdir(exist_ok=True)
    image_id, seconds = podman.build(TAG, OUT / "image-build.log")
    built = BuiltImage(image_id, seconds, podman.image_size(image_id), podman.image_size(BASE_IMAGE))
    _report.update(asdict(built), added_bytes=built.added_bytes, tag=TAG)
    (OUT / "image-report.json").write_text(json.dumps(_report, indent=2))
    return built


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _report:
        return
    mb = 1024 * 1024
    terminalreporter.write_sep("-", "production image")
    terminalreporter.write_line(
        f"{_report['tag']} ({_report['id'][:12]}): {_report['size_bytes'] / mb:.0f} MiB, of which "
        f"{_report['added_bytes'] / mb:.0f} MiB on top of the base image; built in {_report['build_seconds']:.0f} s")
