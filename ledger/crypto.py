"""Ed25519 keys and signatures.

Rules:
- Signing and verifying go through libsodium (PyNaCl): it verifies about twice as fast
  as the OpenSSL path, and it rejects non-canonical signatures (S >= L) and small-order
  keys, so a signature cannot be re-spelled.
- Key files are PEM "ENCRYPTED PRIVATE KEY" (PKCS#8, RFC 5958) encrypted with PBES2
  (RFC 8018): scrypt (RFC 7914, N = 2**14, r = 8, p = 1, 16-byte salt) derives an
  AES-256-CBC key from the passphrase. ``cryptography`` offers no work-factor setting for
  PKCS#8 (its default is PBKDF2 with 2,048 iterations, cheap to brute-force), so this
  module writes the small PBES2 structure itself; ``openssl pkey`` and ``cryptography``
  read it back. Files are created with mode 0600 and never overwritten; an unencrypted
  key file is never written. Loading accepts any encrypted PKCS#8 Ed25519 key.
- Every signed message is a domain-tagged canonical encoding (see :mod:`ledger.hashing`)
  that includes the chain id; this module signs bytes and knows nothing of messages.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ledger.errors import InvalidSignature, KeyFileError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
KEY_FILE_BYTES_MAX = 16 * 1024
PASSPHRASE_BYTES_MIN = 8
SCRYPT_LOG2_N = 14
"""scrypt cost N = 2**14 (OpenSSL's default): 16 MiB and about 0.1-0.2 s per key file."""
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_SALT_BYTES = 16
_SCRYPT_MAXMEM = 2 * 128 * SCRYPT_R * (1 << SCRYPT_LOG2_N)


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
    pem = _encrypted_pkcs8_pem(key, passphrase)
    path = Path(path)
    if path.exists():
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key file")
    # Written beside the target, then linked into place: a crash never leaves a half
    # key file under the real name, and link() fails rather than overwrite a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # exactly 0600, whatever the umask
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        if not _link_no_overwrite(tmp, path):
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key file")
        _fsync_directory(path.parent)
    except OSError as exc:
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):  # the temporary file may never have existed
            tmp.unlink()


def _link_no_overwrite(source: Path, target: Path) -> bool:
    """Give ``source`` the name ``target`` unless ``target`` exists; return whether done."""
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    except OSError as exc:
        # A file system without hard links: fall back to a rename after a fresh check.
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        if target.exists():
            return False
        os.rename(source, target)
    return True


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


# --------------------------------------------------------------------------- PKCS#8 writer
# DER of EncryptedPrivateKeyInfo (RFC 5958) with PBES2 (RFC 8018), scrypt (RFC 7914 s. 7)
# and AES-256-CBC: the same structure ``openssl pkcs8 -topk8 -scrypt`` writes.

_OID_PBES2 = "1.2.840.113549.1.5.13"
_OID_SCRYPT = "1.3.6.1.4.1.11591.4.11"
_OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _der_int(value: int) -> bytes:
    return _der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _der_oid(dotted: str) -> bytes:
    first, second, *rest = (int(x) for x in dotted.split("."))
    body = bytearray([40 * first + second])
    for arc in rest:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return _der(0x06, bytes(body))


def _seq(*parts: bytes) -> bytes:
    return _der(0x30, b"".join(parts))


def _encrypted_pkcs8_pem(key: SigningKey, passphrase: bytes) -> bytes:
    plain = Ed25519PrivateKey.from_private_bytes(key.seed).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = os.urandom(SCRYPT_SALT_BYTES)
    iv = os.urandom(16)
    n = 1 << SCRYPT_LOG2_N
    aes_key = hashlib.scrypt(passphrase, salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                             maxmem=_SCRYPT_MAXMEM, dklen=32)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    algorithm = _seq(
        _der_oid(_OID_PBES2),
        _seq(
            _seq(_der_oid(_OID_SCRYPT),
                 _seq(_der(0x04, salt), _der_int(n), _der_int(SCRYPT_R), _der_int(SCRYPT_P))),
            _seq(_der_oid(_OID_AES256_CBC), _der(0x04, iv)),
        ),
    )
    der = _seq(algorithm, _der(0x04, encrypted))
    text = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return (
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + "\n".join(lines)
        + "\n-----END ENCRYPTED PRIVATE KEY-----\n"
    ).encode("ascii")
