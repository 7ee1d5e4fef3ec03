"""``python -m node``: a node that cannot start says why in one line and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from node.devnet import generate
from node.netgen import PASSPHRASE_ENV_DEFAULT

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_missing_configuration(tmp_path: Path) -> None:
    done = _run(["--config", str(tmp_path / "absent.toml")], dict(os.environ))
    assert done.returncode == 2
    assert "absent.toml does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_passphrase_and_wrong_passphrase(tmp_path: Path) -> None:
    net = generate(tmp_path / "net", ("A", "B", "C", "D"))
    config = str(net.nodes[0].config_path)
    env = {k: v for k, v in os.environ.items() if k != PASSPHRASE_ENV_DEFAULT}
    done = _run(["--config", config], env)
    assert done.returncode == 2 and PASSPHRASE_ENV_DEFAULT in done.stderr
    done = _run(["--config", config], {**env, PASSPHRASE_ENV_DEFAULT: "not the passphrase"})
    assert done.returncode == 2 and "passphrase is wrong" in done.stderr
    assert "Traceback" not in done.stderr
