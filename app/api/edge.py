"""What every route shares at the edge: answers for text PostgreSQL cannot hold, unknown query parameters
refused, and a complete OpenAPI document."""

from __future__ import annotations

import math
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError

from app.api.deps import route_scope
from app.api.schemas.common import ErrorOut, ValidationErrorOut, error_responses

# PostgreSQL text cannot hold NUL (untranslatable_character) nor invalid code points (character_not_in_repertoire)
_BAD_TEXT_SQLSTATES = {"22P05", "22021"}
_MALFORMED_BODY = {"description": "Malformed request body (not JSON, or not UTF-8)",
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}


def _sqlstate(exc: DBAPIError) -> str | None:
    for candidate in (exc.orig, getattr(exc.orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if code:
            return str(code)
    return None


async def _db_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, DBAPIError) and _sqlstate(exc) in _BAD_TEXT_SQLSTATES:
        # a value no stored entry can contain: a request error, not a server fault (nothing was stored)
        return JSONResponse({"detail": "text parameters must not contain NUL or invalid characters"},
                            status_code=422)
    raise exc


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no inf/nan: `1e400` in a body must not turn a 422 into a 500
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 list form, with values JSON cannot carry spelled as text."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    # never echo the submitted values: a body may carry a private key or a token
    cleaned = [{k: v for k, v in err.items() if k not in ("input", "url")} for err in errors]
    return JSONResponse({"detail": _json_safe(jsonable_encoder(cleaned))}, status_code=422)


_query_names: dict[int, frozenset[str]] = {}


def _query_params_of(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_params_of(sub)
    return names


def _declared_query(route: APIRoute) -> frozenset[str]:
    names = _query_names.get(id(route))
    if names is None:
        names = _query_names[id(route)] = frozenset(_query_params_of(route.dependant))
    return names


async def reject_unknown_query(request: Request) -> None:
    """A query parameter the route does not know is a mistake worth naming (CONTRACT 11), not something to drop."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params.keys()) - _declared_query(route))
    if unknown:
        # FastAPI's list form, like every other request validation error (each route documents that shape)
        raise RequestValidationError([{"type": "extra_forbidden", "loc": ["query", name[:100]],
                                       "msg": "unknown query parameter"} for name in unknown[:20]])


# OpenAPI links: how an answer's values feed the next request (documentation, and the paths schemathesis' stateful
# phase follows). (method, path, status) → link name → (method, path, {"<in>.<parameter>": runtime expression})
_INSTANCE = {"path.instance_id": "$response.body#/id"}
_LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("put", "/api/v1/entries/{entry_id}", "202"): {
        "GetEntry": ("get", "/api/v1/entries/{entry_id}", {"path.entry_id": "$response.body#/id"}),
        "DeleteEntry": ("delete", "/api/v1/entries/{entry_id}", {"path.entry_id": "$response.body#/id"}),
        "RetryEntry": ("post", "/api/v1/entries/{entry_id}/retry", {"path.entry_id": "$response.body#/id"}),
        "EntryAudit": ("get", "/api/v1/audit", {"query.entry_id": "$response.body#/id"}),
    },
    ("post", "/api/v1/entries/batch", "202"): {
        "GetFirstEntry": ("get", "/api/v1/entries/{entry_id}", {"path.entry_id": "$response.body#/results/0/id"}),
    },
    ("get", "/api/v1/entries", "200"): {
        "GetListedEntry": ("get", "/api/v1/entries/{entry_id}", {"path.entry_id": "$response.body#/items/0/id"}),
        "NextPage": ("get", "/api/v1/entries", {"query.cursor": "$response.body#/next_cursor"}),
    },
    ("post", "/api/v1/jira-instances", "201"): {
        "GetInstance": ("get", "/api/v1/jira-instances/{instance_id}", _INSTANCE),
        "PatchInstance": ("patch", "/api/v1/jira-instances/{instance_id}", _INSTANCE),
        "DeleteInstance": ("delete", "/api/v1/jira-instances/{instance_id}", _INSTANCE),
        "RotateWebhookSecret": ("post", "/api/v1/jira-instances/{instance_id}/webhook-secret", _INSTANCE),
        "StartOAuth": ("post", "/api/v1/jira-instances/{instance_id}/oauth/start", _INSTANCE),
        "LookUpTicket": ("get", "/api/v1/jira-instances/{instance_id}/tickets/{key}", _INSTANCE),
        "JiraWebhook": ("post", "/webhooks/jira/{instance_id}", _INSTANCE),
    },
    ("get", "/api/v1/conflicts", "200"): {
        "GetConflict": ("get", "/api/v1/conflicts/{conflict_id}", {"path.conflict_id": "$response.body#/0/id"}),
        "ResolveConflict": ("post", "/api/v1/conflicts/{conflict_id}/resolve",
                            {"path.conflict_id": "$response.body#/0/id"}),
    },
    ("get", "/api/v1/notifications", "200"): {
        "MarkRead": ("post", "/api/v1/notifications/{notification_id}/read",
                     {"path.notification_id": "$response.body#/0/id"}),
    },
    ("get", "/api/v1/changes", "200"): {
        "ReadOn": ("get", "/api/v1/changes", {"query.after": "$response.body#/next"}),
    },
}


def _add_links(doc: dict[str, Any]) -> None:
    ids = {(method, path): op["operationId"] for path, item in doc.get("paths", {}).items()
           for method, op in item.items() if isinstance(op, dict) and "operationId" in op}
    for (method, path, code), links in _LINKS.items():
        response = doc["paths"][path][method]["responses"][code]
        response["links"] = {name: {"operationId": ids[(m, p)], "parameters": params}
                             for name, (m, p, params) in links.items()}


def _as_doc(code: int) -> dict[str, Any]:
    """The OpenAPI response object of one of `error_responses`' codes."""
    r = error_responses(code)[code]
    return {"description": r["description"], "content": {"application/json": {"schema": {
        "$ref": f"#/components/schemas/{r['model'].__name__}"}}}}


def api_routes(app: FastAPI) -> list[Any]:
    """Every API route as it is served (with the dependencies of the routers it was included through): FastAPI
    0.16x keeps included routers as routes of their own and hands out the effective routes through
    `iter_route_contexts`; older versions list APIRoutes directly."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:
        return [r for r in app.routes if isinstance(r, APIRoute)]
    return [c for c in contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def _add_scopes(app: FastAPI, doc: dict[str, Any]) -> None:
    """`x-scope` on every operation: `tenant` (the API key only), `user` (a user token too, for its own user's
    data) or `public` (no bearer credential), as its dependencies decide (app.api.deps.route_scope)."""
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        item = doc.get("paths", {}).get(route.path_format, {})
        scope = route_scope(route.dependant)
        for method in route.methods:
            operation = item.get(method.lower())
            if operation is None:
                continue
            operation["x-scope"] = scope
            if scope != "public":  # a user token asking for what is not its user's, or for administration
                operation.setdefault("responses", {}).setdefault("403", _as_doc(403))
                operation["responses"].setdefault("401", _as_doc(401))


def complete_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus what it leaves out: every operation may answer 422 (an unknown query parameter),
    one with a body 400 (not JSON) and 413 (too large), an authenticated one 429 (the tenant's rate); ErrorOut
    and ValidationErrorOut are always among the components; each operation's scope (`x-scope`)."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                      tags=app.openapi_tags)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorOut", ErrorOut.model_json_schema())
    schemas.setdefault("ValidationErrorOut", ValidationErrorOut.model_json_schema(
        ref_template="#/components/schemas/{model}"))
    as_doc = {str(code): _as_doc(code) for code in (413, 422, 429)}
    _add_scopes(app, doc)
    for path, path_item in doc.get("paths", {}).items():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("422", as_doc["422"])  # any route: an unknown query parameter
            if "requestBody" in operation:
                responses.setdefault("400", _MALFORMED_BODY)
                responses.setdefault("413", as_doc["413"])
            if "401" in responses and path.startswith(("/api/", "/webhooks/")):  # counted against the tenant's rate
                responses.setdefault("429", as_doc["429"])
    _add_links(doc)
    app.openapi_schema = doc
    return doc


def install(app: FastAPI) -> None:
    app.add_exception_handler(DBAPIError, _db_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.openapi = lambda: complete_openapi(app)  # type: ignore[method-assign]
