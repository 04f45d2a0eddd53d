"""``python -m jirasim --host 127.0.0.1 --port 8099 --config sim.json``"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn

from .app import create_app
from .config import ConfigError, SimConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jirasim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--config", help="JSON file with {'instances': [...]}")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            parser.error("jirasim only listens on loopback addresses")
    except ValueError:
        if args.host != "localhost":
            parser.error("--host must be a loopback address")
    try:
        config = SimConfig.load(args.config) if args.config else SimConfig()
    except (ConfigError, OSError, ValueError) as exc:
        print(f"jirasim: bad config: {exc}", file=sys.stderr)
        return 2
    app = create_app(config)
    root = f"http://{args.host}:{args.port}"
    for inst in app.sim.instances.values():
        kind = "Cloud site" if inst.deployment == "cloud" else "instance"
        print(f"jirasim: {kind} {inst.name} at {root}{inst.url_path}")
    if app.sim.cloud_sites() or config.atlassian.apps:
        platform = config.atlassian
        print(f"jirasim: ATLASSIAN_AUTH_URL={root}{platform.auth_path} ATLASSIAN_API_URL={root}{platform.api_path}")
    config_ = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="asyncio",
        log_level=args.log_level,
        timeout_graceful_shutdown=2,
    )
    gc.collect()
    gc.freeze()  # long-lived objects out of the collector's way: no full-collection stalls on arrivals
    _Server(config_, app.sim.wake_paused).run()
    return 0


class _Server(uvicorn.Server):
    """uvicorn server that ends injected hangs as soon as it is asked to stop."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    sys.exit(main())
