"""Instance key pairs: generation, PKCS#8/PKCS#1 import, and refusals that never quote the key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.security.rsa_keys import KeyImportError, generate_key_pair, import_private_key


def _pem(key: object, fmt: serialization.PrivateFormat,
         enc: serialization.KeySerializationEncryption | None = None) -> str:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, fmt, enc or serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_generated_pair_is_2048_bit_pkcs8_and_matching() -> None:
    pair = generate_key_pair()
    assert pair.bits == 2048
    assert pair.private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert pair.public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    loaded = serialization.load_pem_private_key(pair.private_pem.encode(), None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.public_key().public_numbers() == serialization.load_pem_public_key(
        pair.public_pem.encode()).public_numbers()  # type: ignore[union-attr]
    assert "PRIVATE" not in repr(pair)


def test_generation_refuses_small_keys() -> None:
    with pytest.raises(ValueError):
        generate_key_pair(1024)


@pytest.mark.parametrize("fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL])
def test_pkcs8_and_pkcs1_imports_are_normalised_to_pkcs8(key: rsa.RSAPrivateKey,
                                                         fmt: serialization.PrivateFormat) -> None:
    pair = import_private_key("\n  " + _pem(key, fmt) + "\n")
    assert pair.private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert pair.bits == 2048
    assert serialization.load_pem_public_key(pair.public_pem.encode()).public_numbers() == \
        key.public_key().public_numbers()  # type: ignore[union-attr]


def test_larger_keys_are_accepted() -> None:
    big = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    assert import_private_key(_pem(big, serialization.PrivateFormat.PKCS8)).bits == 3072


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: "", "empty"),
        (lambda: "hello", "not a PEM private key"),
        (lambda: "-----BEGIN PRIVATE KEY-----\nAAAAsecretish\n-----END PRIVATE KEY-----", "cannot be read"),
        (lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024),
                      serialization.PrivateFormat.PKCS8), "1024 bits"),
        (lambda: _pem(ec.generate_private_key(ec.SECP256R1()), serialization.PrivateFormat.PKCS8), "not an RSA key"),
        (lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                      serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")), "encrypted"),
        (lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048),
                      serialization.PrivateFormat.TraditionalOpenSSL, serialization.BestAvailableEncryption(b"pw")),
         "encrypted"),
    ],
)
def test_unusable_keys_are_refused_with_a_reason(make: object, reason: str) -> None:
    pem = make()  # type: ignore[operator]
    with pytest.raises(KeyImportError) as info:
        import_private_key(pem)
    assert reason in str(info.value)
    assert "AAAA" not in str(info.value)


def test_an_inconsistent_key_is_refused_at_import(key: rsa.RSAPrivateKey) -> None:
    """Import is where a key is checked whole: signing parses stored keys without the checks (app.jira.signing)."""
    n = key.private_numbers()
    broken = rsa.RSAPrivateNumbers(p=n.p, q=n.q, d=n.d + 2, dmp1=n.dmp1, dmq1=n.dmq1, iqmp=n.iqmp,
                                   public_numbers=n.public_numbers).private_key(unsafe_skip_rsa_key_validation=True)
    with pytest.raises(KeyImportError) as info:
        import_private_key(_pem(broken, serialization.PrivateFormat.PKCS8))
    assert str(info.value) == "cannot be read as a PEM private key (damaged or unsupported format)"


@pytest.fixture(scope="module")
def oversized_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=4160)


def test_keys_of_up_to_4096_bits_are_accepted_and_larger_ones_refused(oversized_key: rsa.RSAPrivateKey) -> None:
    """Every request is signed on the event loop: a 16384-bit key would cost ~100 ms per signature."""
    four_k = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    assert import_private_key(_pem(four_k, serialization.PrivateFormat.PKCS8)).bits == 4096
    with pytest.raises(KeyImportError) as info:
        import_private_key(_pem(oversized_key, serialization.PrivateFormat.PKCS8))
    assert str(info.value) == "has 4160 bits; RSA keys of 2048 to 4096 bits are accepted"


def test_an_oversized_key_stored_earlier_is_refused_when_loaded(oversized_key: rsa.RSAPrivateKey) -> None:
    from app.jira.errors import PermanentError
    from app.jira.signing import parse_private_key

    with pytest.raises(PermanentError, match="has 4160 bits"):
        parse_private_key(_pem(oversized_key, serialization.PrivateFormat.PKCS8).encode())
