"""``tabellion keys``: encrypted key files, passphrases from a variable or a prompt."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from ledger import crypto
from ledger.crypto import SigningKey, load_key, save_key
from tests.cli.conftest import assert_one_line_error, invoke_cli, run_cli

PASS = "correct horse battery"


def test_keys_new_from_env_writes_an_encrypted_0600_file_and_prints_its_key(
        runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "clerk.key"
    result = runner.invoke(app, ["keys", "new", "--out", str(out), "--passphrase-env", "PW"],
                           env={"PW": PASS})
    assert result.exit_code == 0, result.output
    key = load_key(out, PASS.encode())
    assert f"public key: {key.public_key.hex()}" in result.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in out.read_bytes()

    shown = runner.invoke(app, ["keys", "show", str(out), "--passphrase-env", "PW"],
                          env={"PW": PASS})
    assert shown.exit_code == 0
    assert key.public_key.hex() in shown.stdout


def test_keys_new_prompts_twice_and_refuses_a_mismatch(runner: CliRunner,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "a.key"
    ok = runner.invoke(app, ["keys", "new", "--out", str(out)], input=f"{PASS}\n{PASS}\n")
    assert ok.exit_code == 0, ok.output
    assert load_key(out, PASS.encode()).public_key.hex() in ok.stdout

    other = tmp_path / "b.key"
    bad = runner.invoke(app, ["keys", "new", "--out", str(other)],
                        input=f"{PASS}\nsomething else\n")
    assert bad.exit_code == 2
    assert "do not match" in bad.output
    assert "error: no passphrase given" in bad.stderr
    assert not other.exists()


def test_keys_new_refuses_to_overwrite_and_short_passphrases(runner: CliRunner,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "k.key"
    out.write_text("precious")
    again = runner.invoke(app, ["keys", "new", "--out", str(out), "--passphrase-env", "PW"],
                          env={"PW": PASS})
    assert again.exit_code == 2
    assert "refusing to overwrite" in again.stderr
    assert out.read_text() == "precious"

    short = runner.invoke(app, ["keys", "new", "--out", str(tmp_path / "s.key"),
                                "--passphrase-env", "PW"], env={"PW": "short"})
    assert short.exit_code == 2
    assert "at least 12 characters" in short.stderr


def test_keys_show_wrong_passphrase_missing_file_and_unset_variable_are_one_line(
        tmp_path: Path) -> None:
    out = tmp_path / "k.key"
    created = invoke_cli("keys", "new", "--out", str(out), "--passphrase-env", "PW",
                      env={"PW": PASS})
    assert created.returncode == 0, created.stderr

    wrong = run_cli("keys", "show", str(out), "--passphrase-env", "PW", env={"PW": "not it!!"})
    assert_one_line_error(wrong, 2, "passphrase is wrong")

    missing = invoke_cli("keys", "show", str(tmp_path / "nope.key"), "--passphrase-env", "PW",
                      env={"PW": PASS})
    assert_one_line_error(missing, 2, "does not exist")

    unset = invoke_cli("keys", "show", str(out), "--passphrase-env", "TABELLION_TEST_UNSET")
    assert_one_line_error(unset, 2, "TABELLION_TEST_UNSET is not set")


def test_keys_rekey_brings_an_old_file_to_todays_cost_with_a_new_passphrase(
        runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.key"
    monkeypatch.setenv(crypto.TEST_ONLY_COST_ENV, "14")  # what version 0.1 wrote
    old = SigningKey.generate()
    save_key(old, path, PASS.encode())
    shown = runner.invoke(app, ["keys", "show", str(path), "--passphrase-env", "PW"],
                          env={"PW": PASS})
    assert shown.exit_code == 0 and "2**14" in shown.stderr and "rekey" in shown.stderr
    monkeypatch.delenv(crypto.TEST_ONLY_COST_ENV)  # the production cost for the new file
    done = runner.invoke(app, ["keys", "rekey", str(path), "--passphrase-env", "PW",
                               "--new-passphrase-env", "NEW"],
                         env={"PW": PASS, "NEW": "a brand new passphrase"})
    assert done.exit_code == 0, done.output
    assert old.public_key.hex() in done.stdout  # same key: its enrolment stays valid
    assert load_key(path, b"a brand new passphrase") == old
    assert crypto.weak_reason(path) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["old.key"]  # nothing left behind
    wrong = runner.invoke(app, ["keys", "rekey", str(path), "--passphrase-env", "PW",
                                "--new-passphrase-env", "NEW"],
                          env={"PW": PASS, "NEW": "another new passphrase"})
    assert wrong.exit_code == 2 and "passphrase is wrong" in wrong.stderr
    assert load_key(path, b"a brand new passphrase") == old  # untouched
