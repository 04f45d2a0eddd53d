"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.api.deps import EngineDep, RedisDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="PostgreSQL and Redis answer",
            responses={503: {"description": "PostgreSQL or Redis does not answer"}})
async def readyz(engine: EngineDep, redis: RedisDep) -> JSONResponse:
    checks: dict[str, str] = {}

    async def db() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def ping() -> None:
        await redis.ping()

    for name, probe in (("postgres", db), ("redis", ping)):
        try:
            await asyncio.wait_for(probe(), timeout=2)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"down: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ready" if ok else "not ready", **checks}, status_code=200 if ok else 503)
