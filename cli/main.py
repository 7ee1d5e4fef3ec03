"""Entry point of the ``tabellion`` command: a Typer application.

Each command group lives in its own module and is mounted here. Every command turns the
errors it expects into one line on stderr and a documented exit code (``cli.common``):
0 done, 1 the operation failed or was refused, 2 bad input or usage, 3 node unreachable.
(``tabellion audit`` has its own: 0 intact, 1 findings, 2 could not run.)
"""

from __future__ import annotations

import typer

from cli import bench, demo, export, keys, network, node_cmd, records, submit
from cli.audit import audit_command
from cli.common import EXIT_CODES_HELP, guarded
from cli.receipt import receipt_app
from cli.tag_keys import aid_app

app = typer.Typer(
    name="tabellion",
    help="Tabellion: a permissioned ledger for municipal records.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(keys.app, name="keys")
app.add_typer(network.app, name="network")
app.add_typer(node_cmd.app, name="node")
submit.register(app)
app.add_typer(records.app, name="record")
demo.register(app)
bench.register(app)
export.register(app)
# The auditor's tools (issue 7) document their own exit codes in their help.
app.command("audit")(audit_command)
app.add_typer(receipt_app, name="receipt")
app.add_typer(aid_app, name="aid")


@app.command(epilog=EXIT_CODES_HELP)
@guarded
def version() -> None:
    """Print the Tabellion version.

    Example: tabellion version
    """
    from importlib.metadata import version as dist_version

    typer.echo(f"tabellion {dist_version('tabellion')}")
