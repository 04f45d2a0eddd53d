"""ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from . import atlassian_endpoints, control_api, oauth2_endpoints, oauth_endpoints, rest
from .config import SimConfig
from .gates import CloudGate, DataCenterGate, PlatformGate
from .pipeline import CLOUD, DATACENTER, DROP_FLAG, RouteSpec, run_route, server_base
from .simulator import Simulator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_DC_GATE = DataCenterGate()
_CLOUD_GATE = CloudGate()
_PLATFORM_GATE = PlatformGate()


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


def _cloud_route(spec: RouteSpec, api_path: str) -> Route:
    """A Jira Cloud resource behind the gateway (``<api_path>/ex/jira/<cloud_id>/rest/api/2/...``)."""

    async def endpoint(request: Request) -> Response:
        sim: Simulator = request.app.state.sim
        site = sim.site_by_cloud_id(str(request.path_params.get("cloud_id", "")))
        if site is None:
            return JSONResponse({"code": 404, "message": "Not Found"}, status_code=404)
        return await run_route(spec, request, site, _CLOUD_GATE, server_base(request, site.url_path))

    return Route(api_path + "/ex/jira/{cloud_id}" + spec.path, endpoint, methods=[spec.method], name=None)


def _platform_route(spec: RouteSpec, prefix: str) -> Route:
    """Atlassian's authorization server (``<auth_path>/...``) or the gateway's own resources (``<api_path>/...``)."""

    async def endpoint(request: Request) -> Response:
        sim: Simulator = request.app.state.sim
        return await run_route(spec, request, sim.atlassian, _PLATFORM_GATE, server_base(request, prefix))

    return Route(prefix + spec.path, endpoint, methods=[spec.method], name=None)


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
        platform = sim.config.atlassian
        routes: list[BaseRoute] = list(control_api.ROUTES)
        routes += [_platform_route(s, platform.auth_path) for s in atlassian_endpoints.AUTH_ROUTES]
        routes += [_platform_route(s, platform.api_path) for s in atlassian_endpoints.GATEWAY_ROUTES]
        routes += [_cloud_route(s, platform.api_path) for s in rest.ROUTES if CLOUD in s.deployments]
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
