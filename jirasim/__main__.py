"""``python -m jirasim --host 127.0.0.1 --port 8099 --config sim.json``"""

from __future__ import annotations

import argparse
import ipaddress
import sys

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
    for inst in config.instances:
        print(f"jirasim: instance {inst.name} at http://{args.host}:{args.port}{inst.context_path}")
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="asyncio",
        log_level=args.log_level,
        timeout_graceful_shutdown=2,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
