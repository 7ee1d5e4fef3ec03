"""Every command: --help with an example; bad input and an unreachable node give one
line on stderr and the documented exit code, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from cli.main import app
from cli.network import Network
from node.netgen import free_ports
from tests.cli.conftest import assert_one_line_error, invoke_cli, run_cli


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every leaf command of the tree (Typer vendors click: groups have ``commands``)."""
    found: dict[tuple[str, ...], Any] = {}
    for name, command in group.commands.items():
        path = (*prefix, name)
        if hasattr(command, "commands"):
            found.update(_commands(command, path))
        else:
            found[path] = command
    return found


def test_every_command_has_help_with_an_example_and_the_exit_codes() -> None:
    commands = _commands(typer.main.get_command(app))
    assert {("keys", "new"), ("network", "init"), ("node", "start"), ("submit",),
            ("status",), ("tx", "show"), ("query",), ("demo",), ("bench",), ("export",),
            ("record", "disbursement"), ("audit",), ("receipt", "verify")} <= set(commands)
    for path, command in commands.items():
        text = f"{command.help or ''}"
        assert "Example: " in text and "tabellion " in text.split("Example: ")[1], path
        assert "Exit codes" in f"{text} {command.epilog or ''}", path


def test_help_runs_through_the_console_script() -> None:
    result = run_cli("submit", "--help")
    assert result.returncode == 0
    assert "Example" in result.stdout and "3 the node could not be reached" in result.stdout


def _unreachable() -> str:
    return f"http://127.0.0.1:{free_ports(1)[0]}"


def test_unreachable_node_exits_3(network: Network) -> None:
    assert_one_line_error(run_cli("status", "--node", _unreachable()), 3,
                          "cannot reach the node")
    assert_one_line_error(invoke_cli("tx", "show", "ab" * 32, "--node", _unreachable()), 3)
    assert_one_line_error(invoke_cli("status", "--node", "127.0.0.1:1"), 2, "must be a URL")


def test_submit_checks_the_payload_before_contacting_the_node(network: Network,
                                                              tmp_path: Path) -> None:
    m = network.municipalities[0]
    key = str(network.key_of(m, "clerk"))
    pw = str(network.passphrase_of(m, "clerk"))
    node = _unreachable()  # reaching it would exit 3: these must fail earlier, with 2

    def submit(payload: str, *extra: str) -> None:
        path = tmp_path / "payload.json"
        path.write_text(payload)
        result = invoke_cli("submit", "notary", "anchor", "--payload", str(path), "--key",
                            key, "--passphrase-file", pw, "--node", node, *extra)
        assert result.returncode == 2, result.stderr
        assert_one_line_error(result, 2)

    good = {"siret": m.siret, "sha256": "ab" * 32, "document_type": "arrete",
            "reference": "ARR-1"}
    typo = run_cli("submit", "notary", "anchor", "--payload", "-", "--key", key,
                   "--passphrase-file", pw, "--node", node,
                   stdin=json.dumps({**good, "colour": "red"}))
    assert_one_line_error(typo, 2, "the field colour is not part of notary.anchor")
    submit(json.dumps({**good, "sha256": "xyz"}))  # not a hash
    submit(json.dumps({**good, "amount": 1.5}))  # a float
    submit("{not json")
    submit("[1, 2]")
    missing = invoke_cli("submit", "notary", "anchor", "--payload", str(tmp_path / "no.json"),
                      "--key", key, "--passphrase-file", pw, "--node", node)
    assert_one_line_error(missing, 2, "does not exist")
    unknown = invoke_cli("submit", "notary", "stamp", "--payload", "-", "--key", key,
                      "--passphrase-file", pw, "--node", node, stdin=json.dumps(good))
    assert_one_line_error(unknown, 2, "no action 'stamp'")
    wrong_pw = tmp_path / "wrong"
    wrong_pw.write_text("not the passphrase\n")
    bad_key = invoke_cli("submit", "notary", "anchor", "--payload", "-", "--key", key,
                      "--passphrase-file", str(wrong_pw), "--node", node,
                      stdin=json.dumps(good))
    assert_one_line_error(bad_key, 2, "passphrase is wrong")
    # A valid payload and key get as far as the network: the unreachable node is exit 3.
    reached = run_cli("submit", "notary", "anchor", "--payload", "-", "--key", key,
                      "--passphrase-file", pw, "--node", node, stdin=json.dumps(good))
    assert_one_line_error(reached, 3, "cannot reach the node")


def test_node_start_reports_a_bad_configuration(network: Network, tmp_path: Path) -> None:
    assert_one_line_error(run_cli("node", "start", "--config", str(tmp_path / "none.toml")),
                          2, "does not exist")
    bad = tmp_path / "bad.toml"
    bad.write_text('data_dir = "x"\nlisten_api = 3\n')
    assert_one_line_error(invoke_cli("node", "start", "--config", str(bad)), 2)
    m = network.municipalities[0]
    wrong = tmp_path / "wrong"
    wrong.write_text("definitely wrong\n")
    assert_one_line_error(run_cli("node", "start", "--config", str(network.config_of(m)),
                                  "--passphrase-file", str(wrong)), 2, "passphrase is wrong")
    assert_one_line_error(invoke_cli("node", "start", "--config", str(network.config_of(m)),
                                     env={"TABELLION_PASSPHRASE": ""}), 2, "empty")


def test_guard_turns_any_error_into_one_line_and_its_exit_code() -> None:
    from typer.testing import CliRunner

    from cli.common import CliError, guarded
    from ledger.errors import CorruptionError, KeyFileError

    errors: dict[str, BaseException] = {
        "bug": RuntimeError("boom\nsecond line"),
        "store": CorruptionError("block 7 does not match its hash"),
        "key": KeyFileError("cannot decrypt k.key: the passphrase is wrong"),
        "perm": PermissionError(13, "Permission denied", "/etc/shadow"),
        "mine": CliError("refused", 1),
    }
    expected = {"bug": 1, "store": 1, "key": 2, "perm": 2, "mine": 1}
    demo = typer.Typer()

    @demo.command()
    @guarded
    def fail(kind: str) -> None:
        raise errors[kind]

    for kind, code in expected.items():
        result = CliRunner().invoke(demo, [kind])
        assert result.exit_code == code, (kind, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (kind, result.stderr)
        assert "Traceback" not in result.output
    assert "bug in tabellion" in CliRunner().invoke(demo, ["bug"]).stderr


def test_python_dash_m_cli_is_the_same_application() -> None:
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "cli", "--help"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0 and "network" in result.stdout and "demo" in result.stdout
