"""RSA key pairs of JIRA instances: generated here or imported from an admin's PEM (CONTRACT section 3).

The private key signs every OAuth 1.0a request (RSA-SHA1); the public key is what an admin pastes into
JIRA's application link. Imported keys are normalised to unencrypted PKCS#8 before they are sealed, so
the rest of the service sees one format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

MIN_KEY_BITS = 2048
# every request is signed on the event loop: 4096 bits cost ~1.6 ms a signature here, 16384 bits ~100 ms
MAX_KEY_BITS = 4096
DEFAULT_KEY_BITS = 2048
# a 4096-bit PKCS#8 PEM is about 3.3 kB; anything far larger is not a key we accept
MAX_PEM_CHARS = 20_000


class KeyImportError(ValueError):
    """The PEM given as an instance's private key cannot be used; the message says why (never quoting it)."""


@dataclass(frozen=True)
class KeyPair:
    """A private key as PKCS#8 PEM (never printed) and its public key as SubjectPublicKeyInfo PEM."""

    private_pem: str = field(repr=False)
    public_pem: str
    bits: int


def _pair(key: rsa.RSAPrivateKey) -> KeyPair:
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return KeyPair(private_pem, public_key_pem(key), key.key_size)


def public_key_pem(key: rsa.RSAPrivateKey) -> str:
    """The SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`) of a private key."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def generate_key_pair(bits: int = DEFAULT_KEY_BITS) -> KeyPair:
    """A fresh RSA key pair (e = 65537). CPU-bound (tens to hundreds of ms): run it off the event loop."""
    if bits < MIN_KEY_BITS:
        raise ValueError(f"RSA keys must have at least {MIN_KEY_BITS} bits")
    return _pair(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def import_private_key(pem: str) -> KeyPair:
    """Read an unencrypted PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) RSA key.

    Raises `KeyImportError` for anything else: not PEM, encrypted, not RSA, or not 2048 to 4096 bits.
    """
    text = pem.strip()
    if not text:
        raise KeyImportError("is empty")
    if len(text) > MAX_PEM_CHARS:
        raise KeyImportError("is too long to be an RSA private key")
    if "PRIVATE KEY-----" not in text:
        raise KeyImportError("is not a PEM private key (expected -----BEGIN PRIVATE KEY----- "
                             "or -----BEGIN RSA PRIVATE KEY-----)")
    if "ENCRYPTED" in text or "Proc-Type: 4,ENCRYPTED" in text:
        raise KeyImportError("is encrypted; import the key without a passphrase")
    try:
        key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
    except TypeError:
        raise KeyImportError("is encrypted; import the key without a passphrase") from None
    except (ValueError, UnicodeEncodeError):
        # cryptography's messages can quote parts of the input: say what is wrong, in our words
        raise KeyImportError("cannot be read as a PEM private key (damaged or unsupported format)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyImportError("is not an RSA key (JIRA's OAuth 1.0a application links need RSA-SHA1)")
    if not MIN_KEY_BITS <= key.key_size <= MAX_KEY_BITS:
        raise KeyImportError(f"has {key.key_size} bits; RSA keys of {MIN_KEY_BITS} to {MAX_KEY_BITS} bits are accepted")
    return _pair(key)
