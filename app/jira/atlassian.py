"""Atlassian's platform for Jira Cloud (CONTRACT 12): the 3LO authorize URL, the token endpoint and the sites a
consent reaches.

The service is one distributable OAuth 2.0 (3LO) app (`ATLASSIAN_CLIENT_ID`/`_SECRET`). A user consents at
`<ATLASSIAN_AUTH_URL>/authorize`; the code that comes back is exchanged at `<ATLASSIAN_AUTH_URL>/oauth/token` (a JSON
body, as Atlassian documents it), which also renews pairs: refresh tokens rotate on every use, and presenting a
replaced one more than 10 minutes later revokes the user's consent (`app.jira.token_refresh` makes sure that never
happens). `<ATLASSIAN_API_URL>/oauth/token/accessible-resources` lists the sites a consent reaches. Every request goes
through the JIRA client like any other (egress rules, the site's rate limit, the audit log); secrets travel in bodies,
never in URLs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote, urlencode

from app.clock import now_utc
from app.domain.cloud import AccessibleSite
from app.jira.calls import OnCall
from app.jira.client import JiraClient, JiraTarget
from app.jira.errors import TransientError
from app.jira.resources import accessible_sites
from app.jira.token_refresh import TokenPair

AUTHORIZE_PATH = "/authorize"
TOKEN_PATH = "/oauth/token"
RESOURCES_PATH = "/oauth/token/accessible-resources"
AUDIENCE = "api.atlassian.com"
# read and write worklogs, read who approved (`myself`), and a refresh token (`offline_access`)
SCOPES = ("read:jira-work", "write:jira-work", "read:jira-user", "offline_access")
SCOPE = " ".join(SCOPES)


@dataclass(frozen=True)
class AtlassianApp:
    """The service's 3LO app: its client id and secret, and the callback URL it is registered with."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str


def authorize_url(auth_url: str, app: AtlassianApp, *, state: str) -> str:
    """Where the user consents: Atlassian's authorize page for the app's scopes, with a fresh consent (`prompt`)."""
    query = urlencode({"audience": AUDIENCE, "client_id": app.client_id, "scope": SCOPE,
                       "redirect_uri": app.redirect_uri, "state": state, "response_type": "code",
                       "prompt": "consent"}, quote_via=quote, safe="")
    return auth_url.rstrip("/") + AUTHORIZE_PATH + "?" + query


class AtlassianTokens:
    """Atlassian's token endpoint for the app; a `TokenEndpoint` for `RefreshingBearer`. `target` is the
    authorization server as a target of the site's (its requests count against the site's rate limit)."""

    def __init__(self, jira: JiraClient, target: JiraTarget, app: AtlassianApp, *,
                 clock: Callable[[], datetime] = now_utc) -> None:
        self._jira, self._target, self._app, self._clock = jira, target, app, clock

    async def exchange_code(self, code: str, *, on_call: OnCall | None = None) -> TokenPair:
        """The pair for an approved authorization code (single use; it lives 10 minutes)."""
        return await self._token({"grant_type": "authorization_code", "code": code,
                                  "redirect_uri": self._app.redirect_uri}, "exchange_authorization_code", on_call)

    async def refresh(self, refresh_token: str, *, on_call: OnCall | None) -> TokenPair:
        """A new pair for `refresh_token` (which Atlassian then replaces: it answers it again for 10 minutes only)."""
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token},
                                 "refresh_access_token", on_call)

    async def _token(self, grant: dict[str, str], operation: str, on_call: OnCall | None) -> TokenPair:
        body = {**grant, "client_id": self._app.client_id, "client_secret": self._app.client_secret}
        answer = await self._jira.request(self._target, "POST", TOKEN_PATH, operation=operation, json_body=body,
                                          on_call=on_call)
        return TokenPair.from_content(answer.content, status=answer.status_code, server="Atlassian",
                                      operation=operation, now=self._clock())


async def reachable_sites(jira: JiraClient, target: JiraTarget, *, on_call: OnCall | None = None,
                          ) -> list[AccessibleSite]:
    """The sites the consent behind `target`'s access token reaches (`target`: the gateway, Bearer)."""
    answer = await jira.request(target, "GET", RESOURCES_PATH, operation="accessible_resources", on_call=on_call)
    try:
        data = json.loads(answer.content)
    except ValueError:
        raise TransientError("Atlassian answered accessible-resources with a body that is not JSON",
                             maybe_applied=False, status=answer.status_code) from None
    return accessible_sites(data)
