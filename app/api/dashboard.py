"""`GET /dashboard`: a static page that asks for an API key and renders `/api/v1/stats` (no build step)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["operations"])

_PAGE = Path(__file__).resolve().parent.parent / "static" / "dashboard.html"
# the page only talks to this origin; its script and style are inline, nothing is loaded from elsewhere
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _page() -> str:
    return _PAGE.read_text(encoding="utf-8")


@router.get(
    "/dashboard", response_class=HTMLResponse, summary="Operations dashboard (HTML)",
    responses={200: {"description": "The dashboard page; it asks for an API key and refreshes itself",
                     "content": {"text/html": {"schema": {"type": "string"}}}}},
)
async def dashboard() -> HTMLResponse:
    """Per JIRA instance: queue, success/failure rates, push latency, rate-limit usage, circuit state; the newest
    failed and conflicting entries with a Retry button. The key stays in the tab's sessionStorage."""
    return HTMLResponse(_page(), headers=_HEADERS)
