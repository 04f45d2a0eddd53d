"""ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from . import control_api, oauth2_endpoints, oauth_endpoints, rest
from .config import SimConfig
from .gates import DataCenterGate
from .pipeline import DATACENTER, DROP_FLAG, RouteSpec, run_route, server_base
from .simulator import Simulator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_DC_GATE = DataCenterGate()


def _not_found() -> Response:
    return PlainTextResponse("Not Found", status_code=404)


def _instance_route(spec: RouteSpec) -> Route:
    """A Data Center resource below an instance's context path (``/jira1/rest/api/2/...``)."""

    async def endpoint(request: Request) -> Response:
        sim: Simulator = request.app.state.sim
        inst = sim.get(str(request.path_params.get("ctx", "")))
        if inst is None or inst.deployment != DATACENTER:
            return _not_found()
        return await run_route(spec, request, inst, _DC_GATE, server_base(request, inst.context_path))

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
        specs = rest.ROUTES + oauth_endpoints.ROUTES + oauth2_endpoints.ROUTES
        routes += [_instance_route(s) for s in specs if DATACENTER in s.deployments]
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
