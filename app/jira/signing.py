"""OAuth 1.0a RSA-SHA1 request signing for JIRA (CONTRACT section 4).

authlib's rfc5849 helpers normalise the URL and the parameters; the RSA step is ours because authlib's
signer re-parses the PEM private key on every request (~40 ms of CPU). Keys are parsed once and kept in a
`KeyCache` keyed by a fingerprint of the PEM, never by the PEM text itself.

JSON bodies are covered by `oauth_body_hash` (base64 SHA-1 of the exact bytes sent) and sent whole.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from authlib.oauth1.rfc5849.signature import normalize_base_string_uri, normalize_parameters
from authlib.oauth1.rfc5849.util import escape
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from app.jira.errors import PermanentError

# the bound app.security.rsa_keys puts on imported keys; here for keys stored before that bound existed
MAX_KEY_BITS = 4096

PrivateKeyInput = str | bytes | rsa.RSAPrivateKey


class KeyCache:
    """RSA private keys parsed once per process, keyed by the SHA-256 fingerprint of their PEM."""

    def __init__(self, max_size: int = 256) -> None:
        self._max_size = max_size
        self._keys: OrderedDict[str, rsa.RSAPrivateKey] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def load(self, key: PrivateKeyInput) -> rsa.RSAPrivateKey:
        """The key object for a PEM (parsed on first use) or the object itself."""
        if isinstance(key, rsa.RSAPrivateKey):
            return key
        pem = key.encode() if isinstance(key, str) else key
        fingerprint = hashlib.sha256(pem).hexdigest()
        cached = self._keys.get(fingerprint)
        if cached is not None:
            self._keys.move_to_end(fingerprint)
            return cached
        loaded = parse_private_key(pem)
        self._keys[fingerprint] = loaded
        if len(self._keys) > self._max_size:
            self._keys.popitem(last=False)
        return loaded


def parse_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Parse an unencrypted PEM RSA private key; a bad key is a permanent configuration error.

    The key's consistency checks (primes, exponents: about 40 ms of CPU for 2048 bits, 270 ms for 4096, on every
    process that pushes the instance, again after every lease hand-over) are skipped: every stored key was generated
    here or passed them when imported (`app.security.rsa_keys.import_private_key`), and it is stored encrypted and
    authenticated, bound to its row, so what is parsed here is a key that was already checked."""
    try:
        key = load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        raise PermanentError("the JIRA instance's private key cannot be read (not an unencrypted PEM key)",
                             status=None) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise PermanentError("the JIRA instance's private key is not an RSA key", status=None)
    if key.key_size > MAX_KEY_BITS:
        # stored before keys were bounded: signing with it would stall every other request of the process
        raise PermanentError(f"the JIRA instance's private key has {key.key_size} bits; import one of at most "
                             f"{MAX_KEY_BITS} bits", status=None)
    return key


@dataclass(frozen=True)
class OAuthConsumer:
    """Who signs: the instance's consumer key and its loaded RSA key."""

    consumer_key: str
    key: rsa.RSAPrivateKey

    def __repr__(self) -> str:
        return f"OAuthConsumer(consumer_key={self.consumer_key!r}, key=<redacted>)"


def body_hash(body: bytes) -> str:
    """`oauth_body_hash`: base64 of the SHA-1 of the raw body."""
    return base64.b64encode(hashlib.sha1(body).digest()).decode("ascii")  # noqa: S324 - mandated by the spec


def signature_base_string(method: str, url: str, oauth_params: list[tuple[str, str]]) -> str:
    """RFC 5849 3.4.1: method, URL without query (context path kept), and all query + oauth parameters."""
    query = urlsplit(url).query
    params = parse_qsl(query, keep_blank_values=True) + [(k, v) for k, v in oauth_params if k != "oauth_signature"]
    return "&".join([escape(method.upper()), escape(normalize_base_string_uri(url)),
                     escape(normalize_parameters(params))])


def authorization_header(
    consumer: OAuthConsumer, *, method: str, url: str, body: bytes = b"", token: str | None = None,
    callback: str | None = None, verifier: str | None = None,
    nonce: str | None = None, timestamp: int | None = None,
) -> str:
    """The `Authorization: OAuth ...` value for one request, signed RSA-SHA1.

    `url` must be exactly the URL sent (query included); `body` exactly the bytes sent. The token secret
    plays no part in RSA-SHA1, so it is not asked for.
    """
    params: list[tuple[str, str]] = [
        ("oauth_consumer_key", consumer.consumer_key),
        ("oauth_nonce", nonce or secrets.token_hex(16)),
        ("oauth_signature_method", "RSA-SHA1"),
        ("oauth_timestamp", str(int(time.time()) if timestamp is None else timestamp)),
        ("oauth_version", "1.0"),
    ]
    if token:
        params.append(("oauth_token", token))
    if callback:
        params.append(("oauth_callback", callback))
    if verifier:
        params.append(("oauth_verifier", verifier))
    if body:
        params.append(("oauth_body_hash", body_hash(body)))
    base = signature_base_string(method, url, params)
    signature = consumer.key.sign(base.encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    params.append(("oauth_signature", base64.b64encode(signature).decode("ascii")))
    return "OAuth " + ", ".join(f'{escape(k)}="{escape(v)}"' for k, v in params)
