"""Ed25519 keys and signatures.

Rules:
- Signing and verifying go through libsodium (PyNaCl): it verifies about twice as fast
  as the OpenSSL path, and it rejects non-canonical signatures (S >= L) and small-order
  keys, so a signature cannot be re-spelled.
- Key files are PKCS#8, encrypted with a passphrase (``cryptography``, scrypt + AES-256)
  and written with mode 0600; an unencrypted key file is never written.
- Every signed message is a domain-tagged canonical encoding (see :mod:`ledger.hashing`)
  that includes the chain id; this module signs bytes and knows nothing of messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import InvalidSignature, KeyFileError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
KEY_FILE_BYTES_MAX = 16 * 1024
PASSPHRASE_BYTES_MIN = 8


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 private key. ``seed`` is the 32-byte RFC 8032 secret."""

    seed: bytes

    def __post_init__(self) -> None:
        if len(self.seed) != SEED_BYTES:
            raise KeyFileError(f"an Ed25519 seed is {SEED_BYTES} bytes, got {len(self.seed)}")

    @staticmethod
    def generate() -> SigningKey:
        return SigningKey(os.urandom(SEED_BYTES))

    @property
    def public_key(self) -> bytes:
        return _nacl_key(self.seed).verify_key.encode()

    def sign(self, message: bytes) -> bytes:
        return _nacl_key(self.seed).sign(message).signature

    def __repr__(self) -> str:  # never print the secret
        return f"SigningKey(public={self.public_key.hex()[:16]}…)"


_NACL_CACHE: dict[bytes, nacl.signing.SigningKey] = {}


def _nacl_key(seed: bytes) -> nacl.signing.SigningKey:
    key = _NACL_CACHE.get(seed)
    if key is None:
        if len(_NACL_CACHE) >= 1024:  # bounded: a process holds a handful of keys
            _NACL_CACHE.clear()
        key = nacl.signing.SigningKey(seed)
        _NACL_CACHE[seed] = key
    return key


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is a valid Ed25519 signature of ``message``."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


def require_valid(public_key: bytes, message: bytes, signature: bytes, what: str) -> None:
    """Raise ``InvalidSignature`` naming ``what`` unless the signature verifies."""
    if not verify(public_key, message, signature):
        raise InvalidSignature(f"the signature of {what} does not verify")


def save_key(key: SigningKey, path: Path, passphrase: bytes) -> None:
    """Write ``key`` to ``path`` as passphrase-encrypted PKCS#8 PEM with mode 0600."""
    if len(passphrase) < PASSPHRASE_BYTES_MIN:
        raise KeyFileError(f"choose a passphrase of at least {PASSPHRASE_BYTES_MIN} characters")
    private = Ed25519PrivateKey.from_private_bytes(key.seed)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    path = Path(path)
    if path.exists():
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())


def load_key(path: Path, passphrase: bytes) -> SigningKey:
    """Read an encrypted key file; raise ``KeyFileError`` with the reason otherwise."""
    path = Path(path)
    try:
        if path.stat().st_size > KEY_FILE_BYTES_MAX:
            raise KeyFileError(f"{path} is too large to be a key file")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {path} does not exist") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    if b"ENCRYPTED PRIVATE KEY" not in data:
        raise KeyFileError(f"{path} is not an encrypted Tabellion key file (damaged?)")
    try:
        private = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(
            f"cannot decrypt {path}: the passphrase is wrong or the file is damaged"
        ) from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a key that is not Ed25519")
    seed = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return SigningKey(seed)
