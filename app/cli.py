"""Admin CLI (CONTRACT section 9): `python -m app.cli COMMAND`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.bootstrap import Runtime, build
from app.config import Settings, get_settings
from app.db.models import Tenant
from app.domain.origins import normalise_origins
from app.security.secrets import SecretBox
from app.services.tenants import create_api_key, create_tenant, revoke_api_key


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


async def _with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[Any]]) -> Any:
    """Run one command with the process's shared objects (app.bootstrap), closed afterwards."""
    runtime = build(settings, "cli")
    try:
        return await work(runtime)
    finally:
        await runtime.close()


async def _with_session(settings: Settings, work: Callable[[Any, SecretBox], Awaitable[Any]]) -> Any:
    async def in_session(runtime: Runtime) -> Any:
        async with runtime.sessionmaker() as session:
            result = await work(session, runtime.box)
            await session.commit()
            return result

    return await _with_runtime(settings, in_session)


def cmd_create_tenant(args: argparse.Namespace, settings: Settings) -> None:
    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        _fail(f"--timezone: unknown IANA time zone {args.timezone!r}")
    try:
        origins = normalise_origins(args.origin or [])
    except ValueError as exc:
        _fail(f"--origin: {exc}")

    async def work(session: Any, box: SecretBox) -> Any:
        return await create_tenant(session, box, name=args.name, timezone=args.timezone, allowed_origins=origins)

    t = asyncio.run(_with_session(settings, work))
    # exactly CONTRACT 9's object; the origins are read back with GET /api/v1/tenant
    print(json.dumps({"tenant_id": str(t.tenant_id), "api_key": t.api_key, "webhook_secret": t.webhook_secret}))


def cmd_create_api_key(args: argparse.Namespace, settings: Settings) -> None:
    try:
        tenant_id = uuid.UUID(args.tenant)
    except ValueError:
        _fail("--tenant: not a tenant id")

    async def work(session: Any, box: SecretBox) -> Any:
        if await session.get(Tenant, tenant_id) is None:
            _fail(f"--tenant: no tenant {tenant_id}")
        return await create_api_key(session, tenant_id)

    key = asyncio.run(_with_session(settings, work))
    print(json.dumps({"tenant_id": str(tenant_id), "api_key": key}))


def cmd_revoke_api_key(args: argparse.Namespace, settings: Settings) -> None:
    try:
        tenant_id = uuid.UUID(args.tenant)
    except ValueError:
        _fail("--tenant: not a tenant id")
    key = sys.stdin.readline().strip() if args.key == "-" else args.key

    async def work(session: Any, box: SecretBox) -> Any:
        return await revoke_api_key(session, tenant_id, key)

    if not asyncio.run(_with_session(settings, work)):
        _fail("--key: no active key of that tenant matches")
    # API processes remember key → tenant for a few seconds (app.api.deps.TENANT_CACHE_SECONDS)
    print(json.dumps({"tenant_id": str(tenant_id), "revoked": True, "effective_within_seconds": 5}))


def _progress_bar(done: int, total: int) -> None:
    width = 40
    filled = int(width * done / total) if total else width
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} entries left pending")
    sys.stderr.flush()


def cmd_sync_pending(args: argparse.Namespace, settings: Settings) -> None:
    from app.services.sync_pending import sync_pending

    tenant_id = None
    if args.tenant:
        try:
            tenant_id = uuid.UUID(args.tenant)
        except ValueError:
            _fail("--tenant: not a tenant id")

    async def run(runtime: Runtime) -> Any:
        return await sync_pending(
            runtime.sessionmaker, None if args.dry_run else runtime.wake, tenant_id=tenant_id, dry_run=args.dry_run,
            wait_seconds=args.wait, progress=None if args.dry_run else _progress_bar,
        )

    summary = asyncio.run(_with_runtime(settings, run))
    if not args.dry_run:
        sys.stderr.write("\n")
    print(json.dumps({
        "pending_found": summary.total, "dry_run": args.dry_run, "newly_queued": summary.queued,
        "statuses_now": dict(sorted(summary.by_status.items())), "timed_out": summary.timed_out,
    }))
    if summary.timed_out:
        print(f"still pending after {args.wait:.0f} s: the workers go on; run again to follow", file=sys.stderr)


def cmd_rotate_encryption_key(args: argparse.Namespace, settings: Settings) -> None:
    from app.services.key_rotation import rotate_encryption_key

    async def run(runtime: Runtime) -> Any:
        return await rotate_encryption_key(runtime.sessionmaker, runtime.box, batch_size=args.batch_size)

    summary = asyncio.run(_with_runtime(settings, run))
    print(json.dumps(summary.as_json()))
    if summary.unreadable:
        print(f"{summary.unreadable} value(s) could not be opened with any key in ENCRYPTION_KEYS; "
              "they were left as they are", file=sys.stderr)
        raise SystemExit(1)


def cmd_rotate_user_token_key(args: argparse.Namespace, settings: Settings) -> None:
    from app.services.user_tokens import UserTokens

    try:
        tenant_id = uuid.UUID(args.tenant)
    except ValueError:
        _fail("--tenant: not a tenant id")

    async def run(runtime: Runtime) -> Any:
        async with runtime.sessionmaker() as session:
            if await session.get(Tenant, tenant_id) is None:
                _fail(f"--tenant: no tenant {tenant_id}")
            tokens = UserTokens(runtime.box, runtime.redis, cache_seconds=0)
            rotation = await tokens.rotate(session, tenant_id, drop_old=args.revoke_all)
            await session.commit()
            return rotation

    rotation = asyncio.run(_with_runtime(settings, run))
    # API processes keep the secrets they opened for a few seconds (app.api.deps.TENANT_CACHE_SECONDS)
    print(json.dumps({"tenant_id": str(tenant_id), "version": rotation.version, "dropped": rotation.dropped,
                      "earlier_tokens": "refused within 5 s" if args.revoke_all else "valid until they expire"}))


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], None]] = {
    "create-tenant": cmd_create_tenant,
    "create-api-key": cmd_create_api_key,
    "revoke-api-key": cmd_revoke_api_key,
    "sync-pending": cmd_sync_pending,
    "rotate-encryption-key": cmd_rotate_encryption_key,
    "rotate-user-token-key": cmd_rotate_user_token_key,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create-tenant", help="create a tenant; prints tenant_id, api_key, webhook_secret")
    p.add_argument("--name", required=True)
    p.add_argument("--timezone", default="UTC", help="IANA zone for entries that name none")
    p.add_argument("--origin", action="append", metavar="ORIGIN",
                   help="a TimeTracker web origin (https://tt.example.com) for OAuth return_urls; repeatable")
    p = sub.add_parser("create-api-key", help="add an API key to a tenant")
    p.add_argument("--tenant", required=True)
    p = sub.add_parser("revoke-api-key", help="revoke one API key of a tenant (effective within 5 s)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--key", required=True, help="the whole key, or - to read it from standard input")
    p = sub.add_parser("sync-pending", help="queue every pending entry (batch priority) and show progress")
    p.add_argument("--tenant", help="only this tenant's entries")
    p.add_argument("--dry-run", action="store_true", help="count what would be queued; change nothing")
    p.add_argument("--wait", type=float, default=600, help="seconds to follow the backlog (default 600)")
    p = sub.add_parser("rotate-encryption-key",
                       help="re-encrypt every stored secret under the first ENCRYPTION_KEYS key; prints a summary")
    p.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")
    p = sub.add_parser("rotate-user-token-key",
                       help="a new secret signs the tenant's user tokens; the previous one verifies until its tokens "
                            "expire")
    p.add_argument("--tenant", required=True)
    p.add_argument("--revoke-all", action="store_true",
                   help="drop every earlier secret now: every user token of the tenant stops working")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    COMMANDS[args.command](args, get_settings())


if __name__ == "__main__":
    main()
