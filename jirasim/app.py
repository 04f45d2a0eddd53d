"""ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from . import control_api, oauth_endpoints, rest
from .config import SimConfig
from .pipeline import DROP_FLAG, RouteSpec, run_route
from .simulator import Simulator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _instance_route(spec: RouteSpec) -> Route:
    async def endpoint(request: Request) -> Response:
        return await run_route(spec, request)

    return Route("/{ctx}" + spec.path, endpoint, methods=[spec.method], name=None)


def _abort_connection(send: Send) -> bool:
    """Close the client connection without a response (uvicorn: via the cycle's transport)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    cycle.disconnected = True  # type: ignore[union-attr]
    transport.abort()
    return True


class JiraSimApp:
    """The ASGI app: Starlette routes wrapped by a connection-dropping layer.

    Handlers that want to simulate a dropped connection set the drop flag; everything
    they would send is swallowed and the TCP connection is aborted.
    """

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        routes: list[BaseRoute] = list(control_api.ROUTES)
        routes += [_instance_route(s) for s in rest.ROUTES + oauth_endpoints.ROUTES]
        self.starlette = Starlette(routes=routes, lifespan=self._lifespan)
        self.starlette.state.sim = sim

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.sim.bind_loop()
        yield
        await self.sim.dispatcher.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.starlette(scope, receive, send)
            return
        flag = {"drop": False}
        scope[DROP_FLAG] = flag

        async def guarded_send(message: Message) -> None:
            if not flag["drop"]:
                await send(message)

        await self.starlette(scope, receive, guarded_send)
        if flag["drop"]:
            if not _abort_connection(send):
                raise ConnectionAbortedError("jirasim: simulated connection drop")
            await asyncio.sleep(0)


def create_app(config: SimConfig | dict[str, Any] | str | None = None) -> JiraSimApp:
    """Build the simulator app from a SimConfig, a config dict or a JSON file path."""
    return JiraSimApp(Simulator(SimConfig.coerce(config)))
