"""Jira Cloud's own rules that the service decides on (CONTRACT 12): what a site's address looks like, which site a
consent reaches and where a site's REST API is. (The worklog property: `app.domain.worklog.WorklogMarker`.) Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit


def normalise_site_url(value: str) -> str:
    """`https://acme.atlassian.net`: https, a host, nothing else (no path, credentials, query or fragment); the host
    lower-cased. Raises ValueError with a reason a person understands."""
    url = value.strip()
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        raise ValueError("must be the site's https:// address, e.g. https://acme.atlassian.net")
    if not parts.hostname:
        raise ValueError("must name the site's host, e.g. https://acme.atlassian.net")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("must not carry credentials")
    if parts.path.strip("/") or parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError("must be the site's address alone, without a path, e.g. https://acme.atlassian.net")
    try:
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError:
        raise ValueError("has an invalid port") from None
    return urlunsplit(("https", parts.netloc.lower(), "", "", ""))


def same_site(a: str, b: str) -> bool:
    """Whether two site addresses name the same site (scheme and host case and a trailing slash do not matter)."""
    def key(url: str) -> str:
        parts = urlsplit(url.strip())
        return f"{parts.netloc.lower()}{parts.path.rstrip('/')}"

    return key(a) == key(b)


@dataclass(frozen=True)
class AccessibleSite:
    """One site a 3LO consent reaches (`accessible-resources`): its cloud id and its address."""

    cloud_id: str
    url: str
    name: str = ""


def reachable_site(sites: Iterable[AccessibleSite], site_url: str) -> AccessibleSite | None:
    """The site among those a consent reaches that is `site_url`, or None."""
    return next((site for site in sites if site.cloud_id and same_site(site.url, site_url)), None)


def gateway_base(api_url: str, cloud_id: str) -> str:
    """The base of a Cloud site's REST API behind Atlassian's gateway (`/rest/api/2/…` goes after it)."""
    return f"{api_url.rstrip('/')}/ex/jira/{quote(cloud_id, safe='')}"
