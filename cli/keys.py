"""``tabellion keys``: create and inspect encrypted Ed25519 key files.

Rules:
- A key file is always encrypted (``ledger.crypto.save_key``: PKCS#8, scrypt + AES-256,
  mode 0600) and never overwritten.
- The passphrase comes from ``--passphrase-env VAR`` or a hidden prompt (asked twice for
  a new key); never from the command line.
- What is printed is public: the public key in hex, which an administrator enrolls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    EXIT_CODES_HELP,
    EXIT_USAGE,
    CliError,
    PassphraseEnv,
    guarded,
    read_passphrase,
)
from ledger.crypto import SigningKey, load_key, rekey, save_key, weak_reason

app = typer.Typer(
    help="Create and inspect encrypted key files.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
)



@app.command("new", epilog=EXIT_CODES_HELP)
@guarded
def keys_new(
    out: Annotated[Path, typer.Option("--out", help="Key file to create (must not exist).")],
    passphrase_env: PassphraseEnv = None,
) -> None:
    """Create a new Ed25519 key, encrypted with a passphrase, and print its public key.

    Example: TABELLION_PASSPHRASE=... tabellion keys new --out clerk.key
    --passphrase-env TABELLION_PASSPHRASE
    """
    if out.exists():
        raise CliError(f"{out} already exists; refusing to overwrite a key file, choose "
                       "another --out", EXIT_USAGE)
    passphrase = read_passphrase(passphrase_env, confirm=True, what=str(out))
    key = SigningKey.generate()
    save_key(key, out, passphrase)
    typer.echo(f"created {out}")
    typer.echo(f"public key: {key.public_key.hex()}")


@app.command("show", epilog=EXIT_CODES_HELP)
@guarded
def keys_show(
    file: Annotated[Path, typer.Argument(help="An encrypted key file.")],
    passphrase_env: PassphraseEnv = None,
) -> None:
    """Decrypt a key file and print its public key (to check the passphrase, or to enroll it).

    Example: tabellion keys show clerk.key --passphrase-env TABELLION_PASSPHRASE
    """
    passphrase = read_passphrase(passphrase_env, confirm=False, what=str(file))
    key = load_key(file, passphrase)
    typer.echo(f"public key: {key.public_key.hex()}")
    reason = weak_reason(file)
    if reason is not None:
        typer.echo(f"warning: {reason}; re-encrypt it: tabellion keys rekey {file}",
                   err=True)


@app.command("rekey", epilog=EXIT_CODES_HELP)
@guarded
def keys_rekey(
    file: Annotated[Path, typer.Argument(help="An encrypted key file to re-encrypt.")],
    passphrase_env: PassphraseEnv = None,
    new_passphrase_env: Annotated[str | None, typer.Option(
        "--new-passphrase-env", metavar="VAR",
        help="The new passphrase from this variable (default: prompted twice).")] = None,
) -> None:
    """Re-encrypt a key file at today's cost (scrypt N = 2**17), with a new passphrase.

    The key itself does not change (its public key stays enrolled); the old file is
    replaced only once the new one is written and checked.

    Example: tabellion keys rekey validator.key
    """
    passphrase = read_passphrase(passphrase_env, confirm=False, what=str(file))
    load_key(file, passphrase)  # a wrong passphrase fails before a new one is asked
    new = read_passphrase(new_passphrase_env, confirm=True, what=f"{file} (new)")
    key = rekey(file, passphrase, new)
    typer.echo(f"re-encrypted {file}")
    typer.echo(f"public key: {key.public_key.hex()}")
