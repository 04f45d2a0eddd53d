"""How a request to JIRA is authenticated: one `Credential` per way (CONTRACT 4 and 13).

The JIRA client knows nothing of the kinds: before a request leaves the gate it asks the target's credential to
get ready (a refreshing credential may renew its token then, through the client and the gate like any other
request), after the gate for the `Authorization` value of exactly the bytes being sent, and after a 401 whether
a fresh credential is worth one more try. Each kind lives here or in its own module beside it:

* `OAuth1Signature`: OAuth 1.0a RSA-SHA1 with the instance's consumer key and the user's access token;
* `StaticBearer`: a token sent as `Authorization: Bearer` as it is (a Data Center personal access token);
* `RefreshingBearer` (`app.jira.token_refresh`): a Bearer access token renewed with its refresh token, one
  renewal at a time per connection across processes (Data Center OAuth 2.0; Jira Cloud 3LO the same way);
* `ClientAuthenticated`: nothing in the header: token endpoints, where the client proves itself in the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from app.jira.calls import OnCall
from app.jira.signing import OAuthConsumer, authorization_header


class Credential(Protocol):
    """What a target authenticates its requests with."""

    @property
    def kind(self) -> str:
        """`oauth1`, `pat`, `oauth2`, … (for logs and errors; never a secret)."""
        ...

    async def prepare(self, on_call: OnCall | None) -> None:
        """Called before the request waits for the gate: renew what is about to expire (may raise a `JiraError`)."""
        ...

    def authorization(self, method: str, url: str, body: bytes) -> str | None:
        """The `Authorization` value for this exact request (None: send none)."""
        ...

    async def renew_after_rejection(self, on_call: OnCall | None) -> bool:
        """JIRA answered 401 to what `authorization` gave: True when a renewed credential is worth one more try
        (may raise `AuthRejected` when it cannot be renewed)."""
        ...


class _Fixed:
    """A credential with nothing to renew."""

    async def prepare(self, on_call: OnCall | None) -> None:
        """Nothing expires."""

    async def renew_after_rejection(self, on_call: OnCall | None) -> bool:
        """A rejected fixed credential stays rejected."""
        return False


@dataclass(frozen=True)
class OAuth1Signature(_Fixed):
    """OAuth 1.0a RSA-SHA1: the consumer's key signs each request; `token` is the user's access token (or, during
    the dance, the request token); `callback` and `verifier` are the dance's extra parameters."""

    consumer: OAuthConsumer
    token: str | None = field(default=None, repr=False)
    callback: str | None = None
    verifier: str | None = field(default=None, repr=False)
    kind: str = "oauth1"

    def authorization(self, method: str, url: str, body: bytes) -> str | None:
        """Signed after the gate's wait, so the timestamp is fresh, over the URL and body exactly as sent."""
        return authorization_header(self.consumer, method=method, url=url, body=body, token=self.token,
                                    callback=self.callback, verifier=self.verifier)


@dataclass(frozen=True)
class StaticBearer(_Fixed):
    """A token JIRA accepts as it is, such as a Data Center personal access token."""

    token: str = field(repr=False)
    kind: str = "pat"

    def authorization(self, method: str, url: str, body: bytes) -> str | None:
        """`Bearer <token>`."""
        return f"Bearer {self.token}"


@dataclass(frozen=True)
class ClientAuthenticated(_Fixed):
    """No `Authorization` header: an OAuth 2.0 token endpoint, where the client authenticates in the body."""

    kind: str = "client"

    def authorization(self, method: str, url: str, body: bytes) -> str | None:
        """None."""
        return None
