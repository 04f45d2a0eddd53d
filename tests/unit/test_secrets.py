"""Secrets at rest: sealed per row and column, opened by any configured key (rotation)."""

from __future__ import annotations

import os

import pytest

from app.config import EncryptionKey
from app.security.secrets import SecretBox, SecretDecryptionError, binding

OLD = EncryptionKey("old", os.urandom(32))
NEW = EncryptionKey("new", os.urandom(32))
ROW = binding("jira_connections", "access_token_enc", "7b7e7f0e-0000-0000-0000-000000000001")


def test_seal_and_open() -> None:
    box = SecretBox([NEW])
    sealed = box.seal("token-value", ROW)
    assert b"token-value" not in sealed
    assert box.open(sealed, ROW) == "token-value"
    assert box.open_bytes(box.seal(b"\x00\xff", ROW), ROW) == b"\x00\xff"
    assert box.seal("same", ROW) != box.seal("same", ROW)  # fresh nonce each time


def test_secret_moved_to_another_row_or_column_does_not_open() -> None:
    box = SecretBox([NEW])
    sealed = box.seal("token-value", ROW)
    with pytest.raises(SecretDecryptionError):
        box.open(sealed, binding("jira_connections", "access_token_enc", "another-row"))
    with pytest.raises(SecretDecryptionError):
        box.open(sealed, binding("jira_connections", "token_secret_enc", "7b7e7f0e-0000-0000-0000-000000000001"))


def test_tampered_secret_does_not_open() -> None:
    box = SecretBox([NEW])
    sealed = bytearray(box.seal("token-value", ROW))
    sealed[-1] ^= 1
    with pytest.raises(SecretDecryptionError):
        box.open(bytes(sealed), ROW)


def test_rotation_old_secret_opens_when_old_key_is_second() -> None:
    sealed = SecretBox([OLD]).seal("token-value", ROW)
    rotated = SecretBox([NEW, OLD])
    assert rotated.open(sealed, ROW) == "token-value"
    assert rotated.needs_rotation(sealed)
    resealed = rotated.seal(rotated.open(sealed, ROW), ROW)
    assert SecretBox.key_id(resealed) == "new"
    assert not rotated.needs_rotation(resealed)
    assert SecretBox([NEW]).open(resealed, ROW) == "token-value"


def test_secret_under_a_removed_key_names_the_key_id() -> None:
    sealed = SecretBox([OLD]).seal("token-value", ROW)
    with pytest.raises(SecretDecryptionError, match="'old'"):
        SecretBox([NEW]).open(sealed, ROW)


@pytest.mark.parametrize("garbage", [b"", b"v1", b"xx\x03abc", b"v1\x05\xff\xfe\xfd\xfc\xfb", b"v1\x03new",
                                     b"v1\x03newshortnonce", b"v1\x00" + os.urandom(40), b"v1\x40new"])
def test_garbage_is_a_decryption_error_not_a_crash(garbage: bytes) -> None:
    with pytest.raises(SecretDecryptionError):
        SecretBox([NEW]).open(garbage, ROW)


def test_key_material_never_printed() -> None:
    assert NEW.key.hex() not in repr(NEW)
    assert "redacted" in repr(NEW)


def test_overlong_key_id_is_refused_up_front() -> None:
    with pytest.raises(ValueError):
        SecretBox([EncryptionKey("k" * 300, os.urandom(32))])
