"""Secrets at rest: AES-256-GCM envelopes with key ids, bound to their row and column.

Layout of a sealed value: b"v1" | len(kid) (1 byte) | kid | 12-byte nonce | ciphertext+tag.
The associated data is "<table>.<column>:<row id>", so a ciphertext copied into another row or
column fails to open. The first configured key seals; every configured key opens (rotation).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.config import EncryptionKey

_MAGIC = b"v1"
_NONCE = 12
_TAG = 16


class SecretDecryptionError(Exception):
    """A sealed value could not be opened (unknown key id, tampered, or moved to another row)."""


def binding(table: str, column: str, row_id: object) -> bytes:
    """The associated data tying a ciphertext to one row and column."""
    return f"{table}.{column}:{row_id}".encode()


class SecretBox:
    """Seals and opens secrets with the configured keys."""

    def __init__(self, keys: Sequence[EncryptionKey]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required")
        if any(not 0 < len(k.kid.encode()) < 256 for k in keys):
            raise ValueError("encryption key ids must be 1 to 255 bytes long")
        self._active = keys[0]
        self._keys = {k.kid: AESGCM(k.key) for k in keys}

    @property
    def active_kid(self) -> str:
        return self._active.kid

    def seal(self, plaintext: str | bytes, aad: bytes) -> bytes:
        """Encrypt under the active key, bound to `aad` (see `binding`)."""
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(12)
        kid = self._active.kid.encode()
        ct = self._keys[self._active.kid].encrypt(nonce, data, aad)
        return _MAGIC + bytes([len(kid)]) + kid + nonce + ct

    def open_bytes(self, sealed: bytes, aad: bytes) -> bytes:
        """Decrypt with whichever configured key sealed it; raises `SecretDecryptionError` otherwise."""
        sealed = bytes(sealed)
        kid = self.key_id(sealed)
        aes = self._keys.get(kid)
        if aes is None:
            raise SecretDecryptionError(f"secret sealed with unknown key id {kid!r}")
        start = 3 + len(kid.encode())
        nonce, ct = sealed[start : start + _NONCE], sealed[start + _NONCE :]
        if len(nonce) != _NONCE or len(ct) < _TAG:
            raise SecretDecryptionError("sealed secret is truncated")
        try:
            return aes.decrypt(nonce, ct, aad)
        except InvalidTag:
            raise SecretDecryptionError("secret does not open: tampered or bound to another row") from None

    def open(self, sealed: bytes, aad: bytes) -> str:
        """`open_bytes` for text secrets."""
        try:
            return self.open_bytes(sealed, aad).decode()
        except UnicodeDecodeError:
            raise SecretDecryptionError("sealed secret is not text") from None

    @staticmethod
    def key_id(sealed: bytes) -> str:
        """The id of the key a value was sealed with."""
        if len(sealed) < 4 or not bytes(sealed[:2]) == _MAGIC:
            raise SecretDecryptionError("not a sealed secret")
        n = sealed[2]
        if n == 0 or len(sealed) < 3 + n:
            raise SecretDecryptionError("not a sealed secret")
        try:
            return bytes(sealed[3 : 3 + n]).decode()
        except UnicodeDecodeError:
            raise SecretDecryptionError("not a sealed secret") from None

    def needs_rotation(self, sealed: bytes) -> bool:
        """True when a value was sealed with a key other than the active one (`rotate-encryption-key`)."""
        return self.key_id(sealed) != self._active.kid
