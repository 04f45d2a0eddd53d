"""Bearer API keys: random, shown once, stored as SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "tts_"


def new_api_key() -> str:
    """A fresh key: `tts_` + 43 url-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:12]


def matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), stored_hash)


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)
