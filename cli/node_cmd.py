"""``tabellion node start``: run a validator node in this process (the image's entrypoint).

Rules:
- The configuration file is read once (``node.config.load_config``); the key passphrase
  comes from the environment variable it names, or from ``--passphrase-file`` (a Docker
  secret, or the file ``network init`` generated for a local network), which this command
  puts in that variable for the node and nowhere else.
- Everything that can be checked before starting is checked here, so that a wrong path or
  passphrase is one line and exit code 2 instead of a node dying in its log: the
  configuration, the genesis file and the key (decrypted once).
- SIGINT and SIGTERM stop the node cleanly (the node runtime handles them); the exit code
  is then 0.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Annotated

import typer

from cli.common import EXIT_CODES_HELP, guarded, passphrase_from_env, passphrase_from_file
from ledger.crypto import load_key
from ledger.genesis import load_genesis
from node.config import load_config

app = typer.Typer(help="Run a validator node.", epilog=EXIT_CODES_HELP, no_args_is_help=True)


@app.command("start", epilog=EXIT_CODES_HELP)
@guarded
def node_start(
    config: Annotated[Path, typer.Option("--config", help="Node configuration (TOML).")],
    passphrase_file: Annotated[Path | None, typer.Option(
        "--passphrase-file",
        help="Read the key passphrase from this file instead of the environment variable "
        "named by passphrase_env in the configuration.")] = None,
) -> None:
    """Start a validator node and serve its API until SIGINT or SIGTERM.

    Example: TABELLION_PASSPHRASE=... tabellion node start --config net/montreuil/node.toml
    """
    cfg = load_config(config)
    if passphrase_file is not None:
        passphrase = passphrase_from_file(passphrase_file)
        os.environ[cfg.passphrase_env] = passphrase.decode()
    else:
        passphrase = passphrase_from_env(cfg.passphrase_env)
    load_genesis(cfg.genesis_file)
    load_key(cfg.key_file, passphrase)
    # Imported here: the runtime pulls in FastAPI and uvicorn, needed only to start.
    runtime = importlib.import_module("node.runtime")
    runtime.run_node(config)
    runtime.end_process(0)  # stopped cleanly (see end_process)
