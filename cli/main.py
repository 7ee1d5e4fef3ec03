"""Entry point of the ``tabellion`` command: a Typer application.

Each command group lives in its own module and is mounted here; errors that Tabellion
raises on purpose (``LedgerError``) are printed as one line with a non-zero exit code.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tabellion",
    help="Tabellion: a permissioned ledger for municipal records.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print the Tabellion version.

    Example: tabellion version
    """
    from importlib.metadata import version as dist_version

    typer.echo(f"tabellion {dist_version('tabellion')}")
