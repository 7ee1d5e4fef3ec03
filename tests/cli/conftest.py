"""Fixtures of the CLI tests: a generated network (made once per module), the console
script, a runner that keeps stderr apart from stdout, and ``tabellion demo`` run as a
child (the demo, kill-safety and portal tests start it the same way)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.network import DEMO_MUNICIPALITIES, Network, init_network
from testkit.wait import wait_for_line

REPO = Path(__file__).resolve().parents[2]
TABELLION = Path(sys.executable).parent / "tabellion"
RUN_TIMEOUT_S = 60
DEMO_READY_LINE = "Press Ctrl-C to stop"
"""What ``tabellion demo`` prints once its nodes answer and its records are committed."""
DEMO_READY_TIMEOUT_S = 240.0


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Network:
    """A four-municipality network with generated passphrases and free ports."""
    root = tmp_path_factory.mktemp("net") / "net"
    return init_network(root, list(DEMO_MUNICIPALITIES), base_port=0, compose=True)


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str = "",
            timeout_s: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run the real console script, as an operator would."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([str(TABELLION), *args], capture_output=True, text=True,
                          input=stdin, env=full_env, timeout=timeout_s, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int,
                          *fragments: str) -> None:
    """The operator sees exactly one ``error:`` line, no traceback, and ``code``."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def invoke_cli(*args: str, env: dict[str, str] | None = None, stdin: str = ""
               ) -> subprocess.CompletedProcess[str]:
    """Run the same application in this process (fast); same result shape as ``run_cli``.

    A few checks per command go through the real console script (``run_cli``) to prove
    what an operator sees; the rest use this to keep the suite fast on a busy machine.
    """
    from cli.main import app

    result = CliRunner().invoke(app, list(args), env=env, input=stdin)
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout,
                                       result.stderr)


def start_demo(directory: Path, log: Path) -> subprocess.Popen[str]:
    """``tabellion demo --dir directory`` on free ports, in a session of its own (so a
    test can signal its whole group), its output in ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(
            [str(TABELLION), "demo", "--dir", str(directory), "--base-port", "0"],
            stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env={**os.environ, "COLUMNS": "200"})


def wait_demo_ready(process: subprocess.Popen[str], log: Path) -> str:
    """Wait until the demo is seeded and serving; its output so far."""
    return wait_for_line(process, log, DEMO_READY_LINE, DEMO_READY_TIMEOUT_S)
