"""``ledger.files``: every file a person hands Tabellion is read bounded, and a failure is
the caller's own error with a message naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.errors import GenesisError, KeyFileError
from ledger.files import read_bytes_bounded, read_text_bounded


def test_a_file_within_its_limit_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "exact.json"
    path.write_bytes(b"x" * 64)
    assert read_bytes_bounded(path, 64, "genesis file", GenesisError) == b"x" * 64
    assert read_text_bounded(path, 64, "genesis file", GenesisError) == "x" * 64


def test_a_file_beyond_its_limit_is_refused_as_the_callers_error(tmp_path: Path) -> None:
    path = tmp_path / "big.key"
    path.write_bytes(b"x" * 65)
    with pytest.raises(KeyFileError, match=r"big.key is larger than 64 bytes: too large to be "
                                           r"a key file"):
        read_bytes_bounded(path, 64, "key file", KeyFileError)


def test_missing_directory_and_non_utf8_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(GenesisError, match=r"genesis file .*nowhere.json does not exist"):
        read_text_bounded(tmp_path / "nowhere.json", 64, "genesis file", GenesisError)
    with pytest.raises(GenesisError, match=r"genesis file .*: it is not a regular file"):
        read_text_bounded(tmp_path, 64, "genesis file", GenesisError)
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes("Saint-Étienne".encode("latin-1"))
    with pytest.raises(GenesisError, match=r"latin1.json: it is not utf-8 text"):
        read_text_bounded(latin1, 64, "genesis file", GenesisError)


def test_the_cli_passphrase_file_is_bounded_too(tmp_path: Path) -> None:
    from cli.common import PASSPHRASE_FILE_BYTES_MAX, CliError, passphrase_from_file

    path = tmp_path / "pass"
    path.write_text("p" * (PASSPHRASE_FILE_BYTES_MAX + 1))
    with pytest.raises(CliError, match="too large to be a passphrase file"):
        passphrase_from_file(path)
    path.write_text("secret\n")
    assert passphrase_from_file(path) == b"secret"
