"""Web origins (`https://tt.example.com`): a tenant's TimeTracker origins and where an OAuth return_url points.

Pure: the same normal form for what a tenant lists and what a URL carries, so comparing them is string equality
(scheme and host lower-cased, a default port dropped, no path).
"""

from __future__ import annotations

from urllib.parse import urlsplit

MAX_ORIGINS = 50
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(value: str) -> str:
    """`HTTPS://TT.Example.com:443/` → `https://tt.example.com`; ValueError for anything that is not an origin
    (no http(s), a path, a query, credentials, a wildcard, a bad port)."""
    text = value.strip()
    if any(c.isspace() or ord(c) < 32 for c in text):
        raise ValueError("an origin must not contain spaces or control characters")
    text = text[:-1] if text.endswith("/") else text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or "*" in text:
        raise ValueError(f"{value[:100]!r} is not an origin like https://tt.example.com")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError(f"{value[:100]!r}: an origin carries no credentials")
    if parts.path or parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError(f"{value[:100]!r}: an origin is scheme, host and port only, without a path")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value[:100]!r} has an invalid port") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def normalise_origins(values: list[str]) -> list[str]:
    """Each origin normalised, duplicates dropped, order kept; at most `MAX_ORIGINS`."""
    result: list[str] = []
    for value in values:
        origin = normalise_origin(value)
        if origin not in result:
            result.append(origin)
    if len(result) > MAX_ORIGINS:
        raise ValueError(f"at most {MAX_ORIGINS} origins")
    return result


def origin_of(url: str) -> str | None:
    """The origin of an absolute http(s) URL, or None when it has none."""
    parts = urlsplit(url.strip())
    try:
        return normalise_origin(f"{parts.scheme}://{parts.netloc}")
    except ValueError:
        return None


def allows(allowed_origins: list[str], url: str) -> bool:
    """True when `url` may be used: the list is empty, or the URL's origin is on it."""
    return not allowed_origins or origin_of(url) in allowed_origins
