"""Ed25519 keys and signatures.

Rules:
- Signing and verifying go through libsodium (PyNaCl): it verifies about twice as fast
  as the OpenSSL path, and it rejects non-canonical signatures (S >= L) and small-order
  keys, so a signature cannot be re-spelled.
- Key files are PEM "ENCRYPTED PRIVATE KEY" (PKCS#8, RFC 5958) encrypted with PBES2
  (RFC 8018): scrypt (RFC 7914, N = 2**17, r = 8, p = 1, 16-byte salt; 128 MiB and about
  0.5-2 s per key file: OWASP's minimum for scrypt) derives an AES-256-CBC key from the
  passphrase. ``cryptography`` offers no work-factor setting for PKCS#8 (its default is
  PBKDF2 with 2,048 iterations, cheap to brute-force) and OpenSSL refuses scrypt above
  32 MiB when decrypting, so this module writes and reads the small PBES2 structure
  itself (``openssl pkcs8 -scrypt`` writes the same structure). Passphrases have at
  least 12 characters. Files are created with mode 0600 and never overwritten; an
  unencrypted key file is never written.
- Loading refuses a key file that its group or others may read or write (``chmod 600``),
  accepts the scrypt files of earlier versions (N = 2**14) and files written by
  ``cryptography`` (PBKDF2); ``weak_reason`` says when a file is weaker than today's
  cost (the node logs it at start, ``keys show`` prints it): re-encrypt it with
  ``tabellion keys rekey``.
- Test-only override: the environment variable ``TABELLION_TEST_ONLY_SCRYPT_LOG2_N``
  (10..17) lowers the cost of *new* key files so that test suites generating dozens of
  networks stay fast. It is never set in production; every file written under it is
  logged as a warning and reported weak on load.
- Every signed message is a domain-tagged canonical encoding (see :mod:`ledger.hashing`)
  that includes the chain id; this module signs bytes and knows nothing of messages.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import nacl.signing
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ledger.errors import InvalidSignature, KeyFileError
from ledger.files import read_bytes_bounded

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
KEY_FILE_BYTES_MAX = 16 * 1024
PASSPHRASE_BYTES_MIN = 12
SCRYPT_LOG2_N = 17
"""scrypt cost N = 2**17 (OWASP's minimum with r = 8, p = 1): 128 MiB per derivation."""
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_SALT_BYTES = 16
SCRYPT_LOG2_N_READ_MIN = 10
SCRYPT_LOG2_N_READ_MAX = 20
"""Costs accepted when reading (a file may not make the loader allocate gigabytes)."""
SCRYPT_R_READ_MAX = 16
SCRYPT_P_READ_MAX = 4
TEST_ONLY_COST_ENV = "TABELLION_TEST_ONLY_SCRYPT_LOG2_N"

log = logging.getLogger("tabellion.keys")


def _scrypt_maxmem(log2_n: int, r: int, p: int) -> int:
    return 128 * r * (1 << log2_n) + 128 * r * p + 1024 * 1024


def write_cost_log2_n() -> int:
    """scrypt cost of new key files: ``SCRYPT_LOG2_N`` unless a test suite lowered it."""
    override = os.environ.get(TEST_ONLY_COST_ENV)
    if not override:
        return SCRYPT_LOG2_N
    if not override.isdigit() or not SCRYPT_LOG2_N_READ_MIN <= int(override) <= SCRYPT_LOG2_N:
        raise KeyFileError(f"{TEST_ONLY_COST_ENV} must be {SCRYPT_LOG2_N_READ_MIN}.."
                           f"{SCRYPT_LOG2_N}; unset it outside test suites")
    return int(override)


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


def invalid_signatures(items: Sequence[tuple[bytes, bytes, bytes]]) -> list[int]:
    """Positions of the ``(public key, message, signature)`` triples whose signature does
    not verify: ``verify`` of each, with the least Python per signature (an audit checks
    millions). The same libsodium check as ``verify`` (``VerifyKey.verify`` is this call
    after the same length checks); a triple repeated in ``items`` is verified once."""
    open_signed = nacl.bindings.crypto_sign_open
    verdicts: dict[tuple[bytes, bytes, bytes], bool] = {}
    failed: list[int] = []
    for position, item in enumerate(items):
        valid = verdicts.get(item)
        if valid is None:
            key, message, signature = item
            valid = len(key) == PUBLIC_KEY_BYTES and len(signature) == SIGNATURE_BYTES
            if valid:
                try:
                    open_signed(signature + message, key)
                except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
                        ValueError, TypeError):
                    valid = False
            verdicts[item] = valid
        if not valid:
            failed.append(position)
    return failed


def require_valid(public_key: bytes, message: bytes, signature: bytes, what: str) -> None:
    """Raise ``InvalidSignature`` naming ``what`` unless the signature verifies."""
    if not verify(public_key, message, signature):
        raise InvalidSignature(f"the signature of {what} does not verify")


def save_key(key: SigningKey, path: Path, passphrase: bytes) -> None:
    """Write ``key`` to ``path`` as passphrase-encrypted PKCS#8 PEM with mode 0600."""
    if len(passphrase) < PASSPHRASE_BYTES_MIN:
        raise KeyFileError(f"choose a passphrase of at least {PASSPHRASE_BYTES_MIN} characters")
    log2_n = write_cost_log2_n()
    if log2_n < SCRYPT_LOG2_N:
        log.warning("writing %s with the test-only scrypt cost 2**%d (%s is set): never "
                    "use such a file in production", path, log2_n, TEST_ONLY_COST_ENV)
    pem = _encrypted_pkcs8_pem(key, passphrase, log2_n)
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
    data = _read_key_file(path)
    try:
        scrypt = _parse_scrypt_pkcs8(data)
    except ValueError as exc:
        raise KeyFileError(f"{path} is damaged or not an encrypted Tabellion key file "
                           f"({exc})") from exc
    if scrypt is None:  # another PBES2 scheme (PBKDF2 by ``cryptography``): let it read
        private = _load_with_library(path, data, passphrase)
    else:
        private = _decrypt_scrypt(path, scrypt, passphrase)
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a key that is not Ed25519")
    seed = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return SigningKey(seed)


def weak_reason(path: Path) -> str | None:
    """Why the key file at ``path`` is weaker than new files, or ``None`` if it is not
    (the file is read, not decrypted)."""
    try:
        scrypt = _parse_scrypt_pkcs8(_read_key_file(Path(path)))
    except (KeyFileError, ValueError):
        return None  # load_key reports what is wrong with it
    return _weakness(scrypt)


def _weakness(scrypt: _ScryptPkcs8 | None) -> str | None:
    if scrypt is None:
        return "it is encrypted with PBKDF2 (cheap to brute-force), not scrypt"
    if scrypt.n < 1 << SCRYPT_LOG2_N:
        return (f"it is encrypted with scrypt N = 2**{scrypt.n.bit_length() - 1}, below "
                f"today's 2**{SCRYPT_LOG2_N}")
    return None


def rekey(path: Path, passphrase: bytes, new_passphrase: bytes) -> SigningKey:
    """Re-encrypt the key file at ``path`` at today's cost (and with ``new_passphrase``);
    the old file is replaced only once the new one is written and synced."""
    path = Path(path)
    key = load_key(path, passphrase)
    fresh = path.with_name(f".{path.name}.rekey-{os.urandom(4).hex()}")
    save_key(key, fresh, new_passphrase)
    if load_key(fresh, new_passphrase) != key:  # never replace a key by something else
        fresh.unlink()
        raise KeyFileError(f"re-encrypting {path} did not give back the same key")
    os.replace(fresh, path)
    _fsync_directory(path.parent)
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"cannot read key file {path}: it is not a regular file")
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise KeyFileError(
                f"{path} may be read or written by other users (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); refusing to use it: run "
                f"`chmod 600 {path}` and check who could have copied it")
    except FileNotFoundError as exc:
        raise KeyFileError(f"key file {path} does not exist") from exc
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    data = read_bytes_bounded(path, KEY_FILE_BYTES_MAX, "key file", KeyFileError)
    if b"ENCRYPTED PRIVATE KEY" not in data:
        raise KeyFileError(f"{path} is not an encrypted Tabellion key file (damaged?)")
    return data


def _load_with_library(path: Path, data: bytes, passphrase: bytes) -> object:
    try:
        return serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(
            f"cannot decrypt {path}: the passphrase is wrong or the file is damaged"
        ) from exc


def _decrypt_scrypt(path: Path, scrypt: _ScryptPkcs8, passphrase: bytes) -> object:
    wrong = KeyFileError(f"cannot decrypt {path}: the passphrase is wrong or the file "
                         "is damaged")
    log2_n = scrypt.n.bit_length() - 1
    if (scrypt.n != 1 << log2_n or not SCRYPT_LOG2_N_READ_MIN <= log2_n
            <= SCRYPT_LOG2_N_READ_MAX or not 1 <= scrypt.r <= SCRYPT_R_READ_MAX
            or not 1 <= scrypt.p <= SCRYPT_P_READ_MAX):
        raise KeyFileError(f"{path}: scrypt parameters N={scrypt.n} r={scrypt.r} "
                           f"p={scrypt.p} are outside what a key file may ask for")
    aes_key = hashlib.scrypt(passphrase, salt=scrypt.salt, n=scrypt.n, r=scrypt.r,
                             p=scrypt.p, maxmem=_scrypt_maxmem(log2_n, scrypt.r, scrypt.p),
                             dklen=32)
    if len(scrypt.encrypted) % 16 or not scrypt.encrypted:
        raise wrong
    decryptor = Cipher(algorithms.AES(aes_key), modes.CBC(scrypt.iv)).decryptor()
    padded = decryptor.update(scrypt.encrypted) + decryptor.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
        return serialization.load_der_private_key(plain, password=None)
    except (ValueError, TypeError) as exc:
        raise wrong from exc


# --------------------------------------------------------------------------- PKCS#8 reader
@dataclass(frozen=True, slots=True)
class _ScryptPkcs8:
    """The fields of an EncryptedPrivateKeyInfo with PBES2, scrypt and AES-256-CBC."""

    salt: bytes
    n: int
    r: int
    p: int
    iv: bytes
    encrypted: bytes


def _der_read(data: bytes, at: int, tag: int) -> tuple[bytes, int]:
    """The body of the DER element of ``tag`` at ``at``, and the offset after it."""
    if at + 2 > len(data) or data[at] != tag:
        raise ValueError(f"expected DER tag {tag:#x} at byte {at}")
    length = data[at + 1]
    at += 2
    if length & 0x80:
        size = length & 0x7F
        if not 1 <= size <= 3 or at + size > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[at:at + size], "big")
        at += size
    if at + length > len(data):
        raise ValueError("truncated DER")
    return data[at:at + length], at + length


def _der_uint(body: bytes) -> int:
    if not body or body[0] & 0x80 or len(body) > 9:
        raise ValueError("bad DER integer")
    return int.from_bytes(body, "big")


def _parse_scrypt_pkcs8(pem: bytes) -> _ScryptPkcs8 | None:
    """The scrypt fields of a PEM key file; ``None`` for another PBES2 key derivation;
    ``ValueError`` if it is not an EncryptedPrivateKeyInfo at all."""
    text = pem.decode("ascii", errors="replace")
    begin, end = "-----BEGIN ENCRYPTED PRIVATE KEY-----", "-----END ENCRYPTED PRIVATE KEY-----"
    if begin not in text or end not in text:
        raise ValueError("no PEM block")
    try:
        der = base64.b64decode(text.split(begin, 1)[1].split(end, 1)[0], validate=False)
    except (ValueError, binascii.Error) as exc:
        raise ValueError("bad base64") from exc
    info, _ = _der_read(der, 0, 0x30)
    algorithm, at = _der_read(info, 0, 0x30)
    encrypted, _ = _der_read(info, at, 0x04)
    oid, at = _der_read(algorithm, 0, 0x06)
    if _der(0x06, oid) != _der_oid(_OID_PBES2):
        return None
    params, _ = _der_read(algorithm, at, 0x30)
    kdf, at = _der_read(params, 0, 0x30)
    cipher, _ = _der_read(params, at, 0x30)
    kdf_oid, k = _der_read(kdf, 0, 0x06)
    if _der(0x06, kdf_oid) != _der_oid(_OID_SCRYPT):
        return None
    kdf_params, _ = _der_read(kdf, k, 0x30)
    salt, k = _der_read(kdf_params, 0, 0x04)
    n_body, k = _der_read(kdf_params, k, 0x02)
    r_body, k = _der_read(kdf_params, k, 0x02)
    p_body, k = _der_read(kdf_params, k, 0x02)
    cipher_oid, c = _der_read(cipher, 0, 0x06)
    if _der(0x06, cipher_oid) != _der_oid(_OID_AES256_CBC):
        return None
    iv, _ = _der_read(cipher, c, 0x04)
    if len(iv) != 16:
        raise ValueError("bad AES-CBC IV")
    return _ScryptPkcs8(salt, _der_uint(n_body), _der_uint(r_body), _der_uint(p_body), iv,
                        encrypted)


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


def _encrypted_pkcs8_pem(key: SigningKey, passphrase: bytes, log2_n: int) -> bytes:
    plain = Ed25519PrivateKey.from_private_bytes(key.seed).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = os.urandom(SCRYPT_SALT_BYTES)
    iv = os.urandom(16)
    n = 1 << log2_n
    aes_key = hashlib.scrypt(passphrase, salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                             maxmem=_scrypt_maxmem(log2_n, SCRYPT_R, SCRYPT_P), dklen=32)
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
