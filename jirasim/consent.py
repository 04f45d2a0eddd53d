"""The pages a person sees while granting access: an Allow/Deny form and an error page.

Every provider the simulator plays (OAuth 1.0a, Data Center OAuth 2.0, Atlassian's authorization server)
shows the same form: hidden fields carrying the request, a ``user`` field naming who approves, and two
buttons posting ``action=allow|deny`` back. Tests drive it by posting those fields.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from starlette.responses import HTMLResponse, RedirectResponse

from .oauth import callback_url


def consent_page(
    *,
    title: str,
    heading: str,
    action: str,
    hidden: dict[str, str],
    user: str,
    details: str = "",
    inputs: dict[str, str] | None = None,
) -> HTMLResponse:
    """``inputs``: further visible text fields (name -> default value) beside ``user``."""
    fields = "".join(
        f'\n  <input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
        for name, value in hidden.items()
    )
    fields += "".join(
        f'\n  <label>{html.escape(name)} <input type="text" name="{html.escape(name)}" value="{html.escape(value)}">'
        "</label>"
        for name, value in (inputs or {}).items()
    )
    body = f"<p>{html.escape(details)}</p>\n" if details else ""
    return HTMLResponse(f"""<!DOCTYPE html>
<html><head><title>{html.escape(title)}</title></head>
<body>
<h1>{html.escape(heading)}</h1>
{body}<form method="post" action="{html.escape(action)}">{fields}
  <label>User <input type="text" name="user" value="{html.escape(user)}"></label>
  <button type="submit" name="action" value="allow" id="approve">Allow</button>
  <button type="submit" name="action" value="deny" id="deny">Deny</button>
</form>
</body></html>""")


def error_page(title: str, message: str, status: int = 400) -> HTMLResponse:
    return HTMLResponse(
        f"<html><body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>",
        status_code=status,
    )


def redirect_back(uri: str, params: Mapping[str, str | None]) -> RedirectResponse:
    """``302`` to the client's redirect URI with ``params`` (those that are not None) added to its query."""
    return RedirectResponse(callback_url(uri, {k: v for k, v in params.items() if v is not None}), status_code=302)
