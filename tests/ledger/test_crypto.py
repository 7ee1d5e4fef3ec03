"""ledger.crypto: Ed25519 through libsodium, and encrypted key files an operator can trust."""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import crypto
from ledger.crypto import SigningKey, load_key, require_valid, save_key, verify
from ledger.errors import InvalidSignature, KeyFileError

# RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte 0x72).
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
     "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
     "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
]
ED25519_L = 2**252 + 27742317777372353535851937790883648493
PASS = b"correct horse battery"


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    key = SigningKey(bytes.fromhex(seed))
    assert key.public_key.hex() == public
    assert key.sign(bytes.fromhex(message)).hex() == signature
    assert verify(key.public_key, bytes.fromhex(message), bytes.fromhex(signature))


def test_verify_rejects_every_kind_of_wrong_input() -> None:
    key, other = SigningKey(b"\x01" * 32), SigningKey(b"\x02" * 32)
    sig = key.sign(b"message")
    assert verify(key.public_key, b"message", sig)
    assert not verify(key.public_key, b"messagf", sig)
    assert not verify(other.public_key, b"message", sig)
    assert not verify(key.public_key, b"message", sig[:63])
    assert not verify(key.public_key[:31], b"message", sig)
    assert not verify(key.public_key, b"message", bytes(64))
    assert not verify(bytes(32), b"message", sig)  # small-order (identity-like) key
    with pytest.raises(InvalidSignature, match="signature of the test vote"):
        require_valid(key.public_key, b"other", sig, "the test vote")
    require_valid(key.public_key, b"message", sig, "the test vote")


def test_signatures_cannot_be_respelt() -> None:
    """S + L verifies the same equation, but libsodium refuses a non-canonical S, so one
    signed message has one signature (and a signed vote cannot be replayed as another)."""
    key = SigningKey(b"\x03" * 32)
    sig = key.sign(b"vote")
    s = int.from_bytes(sig[32:], "little")
    respelt = sig[:32] + (s + ED25519_L).to_bytes(32, "little")
    assert respelt != sig
    assert not verify(key.public_key, b"vote", respelt)


def test_seed_length_and_repr() -> None:
    with pytest.raises(KeyFileError, match="32 bytes, got 31"):
        SigningKey(b"\x00" * 31)
    key = SigningKey(b"\x04" * 32)
    assert key.seed.hex() not in repr(key)
    assert key.public_key.hex()[:16] in repr(key)
    assert len(SigningKey.generate().seed) == 32
    assert SigningKey.generate() != SigningKey.generate()


# --------------------------------------------------------------------------- key files


def test_key_file_round_trip_with_mode_0600(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "keys" / "validator.key"
    save_key(key, path, PASS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert key.seed not in path.read_bytes()
    assert load_key(path, PASS) == key


def test_key_file_uses_scrypt_pbes2_at_owasp_cost(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The passphrase is stretched by scrypt (memory-hard) at N = 2**17 (OWASP), not by
    the library default of PBKDF2 with 2,048 iterations; the structure is what
    ``openssl pkcs8 -scrypt`` writes. Production cost: the test-only override is off."""
    monkeypatch.delenv(crypto.TEST_ONLY_COST_ENV, raising=False)
    path = tmp_path / "k"
    key = SigningKey.generate()
    save_key(key, path, PASS)
    assert load_key(path, PASS) == key
    assert crypto.weak_reason(path) is None
    lines = path.read_text().splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED PRIVATE KEY-----"
    der = base64.b64decode("".join(lines[1:-1]))
    scrypt_oid = bytes.fromhex("06092b06010401da47040b")  # 1.3.6.1.4.1.11591.4.11
    aes256_cbc_oid = bytes.fromhex("060960864801650304012a")  # 2.16.840.1.101.3.4.1.42
    assert crypto.SCRYPT_LOG2_N >= 17  # OWASP's minimum for scrypt with r = 8, p = 1
    n = 1 << crypto.SCRYPT_LOG2_N
    n_body = n.to_bytes(n.bit_length() // 8 + 1, "big")
    assert scrypt_oid in der and aes256_cbc_oid in der
    assert bytes([0x02, len(n_body)]) + n_body in der  # the INTEGER costParameter


def test_files_from_the_library_default_still_load(tmp_path: Path) -> None:
    """Key files written before the scrypt writer (PBKDF2, by ``cryptography``) open."""
    key = SigningKey.generate()
    pem = Ed25519PrivateKey.from_private_bytes(key.seed).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASS),
    )
    path = tmp_path / "old.key"
    path.write_bytes(pem)
    path.chmod(0o600)
    assert load_key(path, PASS) == key
    assert "PBKDF2" in (crypto.weak_reason(path) or "")


def test_files_of_the_previous_scrypt_cost_load_and_are_reported_weak(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(crypto.TEST_ONLY_COST_ENV, "14")  # what version 0.1 wrote
    key = SigningKey.generate()
    save_key(key, tmp_path / "v01.key", PASS)
    assert load_key(tmp_path / "v01.key", PASS) == key
    assert "2**14" in (crypto.weak_reason(tmp_path / "v01.key") or "")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660, 0o644])
def test_a_key_file_others_may_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k"
    save_key(SigningKey.generate(), path, PASS)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=r"chmod 600"):
        load_key(path, PASS)
    path.chmod(0o400)  # read-only for the owner is fine (a read-only mount)
    load_key(path, PASS)


def test_the_test_only_cost_override_is_bounded(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for bad in ("4", "18", "x"):
        monkeypatch.setenv(crypto.TEST_ONLY_COST_ENV, bad)
        with pytest.raises(KeyFileError, match=crypto.TEST_ONLY_COST_ENV):
            save_key(SigningKey.generate(), tmp_path / f"k{bad}", PASS)


def test_a_file_asking_for_an_absurd_scrypt_cost_is_refused_before_deriving(
        tmp_path: Path) -> None:
    fields = crypto._parse_scrypt_pkcs8(crypto._encrypted_pkcs8_pem(SigningKey.generate(),
                                                                    PASS, 10))
    assert fields is not None and fields.n == 1 << 10
    for n, r, p in ((1 << 30, 8, 1), (3 << 10, 8, 1), (1 << 10, 1000, 1), (1 << 10, 8, 99)):
        absurd = replace(fields, n=n, r=r, p=p)
        with pytest.raises(KeyFileError, match="outside what a key file may ask for"):
            crypto._decrypt_scrypt(tmp_path / "k", absurd, PASS)  # no 2**30 KiB allocated


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_mode_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        save_key(SigningKey.generate(), tmp_path / "k", PASS)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary file left behind


def test_unwritable_place_is_a_key_file_error(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    with pytest.raises(KeyFileError, match=r"cannot write key file .*file/k"):
        save_key(SigningKey.generate(), not_a_directory / "k", PASS)


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "validator.key"
    first = SigningKey.generate()
    save_key(first, path, PASS)
    with pytest.raises(KeyFileError, match="already exists; refusing to overwrite"):
        save_key(SigningKey.generate(), path, PASS)
    assert load_key(path, PASS) == first


def test_short_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="at least 12 characters"):
        save_key(SigningKey.generate(), tmp_path / "k", b"eleven char")
    assert not (tmp_path / "k").exists()
    save_key(SigningKey.generate(), tmp_path / "k", b"twelve chars")


def test_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k"
    save_key(SigningKey.generate(), path, PASS)
    with pytest.raises(KeyFileError, match="passphrase is wrong") as info:
        load_key(path, b"incorrect horse")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("where", [0.3, 0.5, 0.8])
def test_damaged_file(tmp_path: Path, where: float) -> None:
    path = tmp_path / "k"
    save_key(SigningKey.generate(), path, PASS)
    data = bytearray(path.read_bytes())
    body_start = data.index(b"\n") + 1
    body_end = data.rindex(b"-----END")
    position = body_start + int((body_end - body_start) * where)
    while bytes(data[position:position + 1]) in (b"\n", b"A"):
        position += 1
    data[position] = ord("A")
    path.write_bytes(bytes(data))
    with pytest.raises(KeyFileError, match=r"cannot decrypt .*damaged"):
        load_key(path, PASS)


def test_truncated_missing_foreign_and_oversize_files(tmp_path: Path) -> None:
    path = tmp_path / "k"
    save_key(SigningKey.generate(), path, PASS)
    text = path.read_bytes()
    path.write_bytes(text[: len(text) // 2])
    with pytest.raises(KeyFileError, match=r"damaged"):
        load_key(path, PASS)
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key(tmp_path / "missing", PASS)
    plain = tmp_path / "plain"
    plain.write_text("just some text\n")
    plain.chmod(0o600)
    with pytest.raises(KeyFileError, match="not an encrypted Tabellion key file"):
        load_key(plain, PASS)
    big = tmp_path / "big"
    big.write_bytes(b"x" * (crypto.KEY_FILE_BYTES_MAX + 1))
    big.chmod(0o600)
    with pytest.raises(KeyFileError, match="too large"):
        load_key(big, PASS)
    with pytest.raises(KeyFileError, match="cannot read"):
        load_key(tmp_path, PASS)  # a directory


def test_key_of_another_algorithm(tmp_path: Path) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(PASS),
    )
    path = tmp_path / "ec.key"
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not Ed25519"):
        load_key(path, PASS)
