"""`GET /dashboard`: one static page, two views, no build step (app/static). With the tenant's API key it shows the
operators' figures and history (`/api/v1/stats`, `/api/v1/stats/history`); with a user token (TimeTracker links
to `/dashboard#token=…`) that person's entries, connections, notifications and conflicts.

The page's script and style are files of their own, so the policy forbids anything inline: a value the API
returns can never run as script, whatever it contains.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import HTMLResponse, Response

router = APIRouter(tags=["operations"])

_STATIC = Path(__file__).resolve().parent.parent / "static"
# what the page may load: the files below, from this origin; what it may call: this origin's API
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# the page's files, by the name it asks for: nothing else in app/static is served
ASSETS = {
    "dashboard.css": "text/css; charset=utf-8",
    "main.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "operator.js": "text/javascript; charset=utf-8",
    "person.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
}


@cache
def _read(name: str) -> bytes:
    return (_STATIC / name).read_bytes()


@router.get(
    "/dashboard", response_class=HTMLResponse, summary="Dashboard: operators' figures and history, or a person's page",
    responses={200: {"description": "The page; it asks for an API key (or takes a user token from its fragment, "
                                    "`/dashboard#token=…`) and refreshes itself",
                     "content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def dashboard() -> HTMLResponse:
    """With the API key: per JIRA instance queue, success/failure rates, push latency, rate-limit usage, circuit state
    and their history (last hour, last 24 hours), the newest failed and conflicting entries with a Retry button.
    With a user token: that person's entries (Retry), JIRA connections (Connect), notifications and conflicts
    (both versions, two ways to resolve). The credential stays in the tab's sessionStorage."""
    return HTMLResponse(_read("dashboard.html"), headers=_HEADERS)


@router.get("/dashboard/assets/{name}", include_in_schema=False)
async def dashboard_asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dashboard asset {name[:100]!r}")
    return Response(_read(name), media_type=media_type, headers=_HEADERS)
