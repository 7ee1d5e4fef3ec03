"""``tabellion export``: the open-data files, built from what a node committed.

Rules:
- The records come from the node's committed blocks (``GET /v1/blocks/{h}``, each parsed
  with ``ledger.jsonview`` which rejects anything malformed); the formats are those of
  ``contracts.opendata`` (pure functions), so every export of the same chain is the same
  file, byte for byte, whichever node served it.
- Only committed transactions whose receipt is ``ok`` count (``contracts.opendata``).
- Social aid leaves as aggregates with small counts suppressed, never row by row.
- The file is written whole, to a temporary name then renamed, so an interrupted export
  never leaves half a file under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cli.client import NodeClient
from cli.common import EXIT_CODES_HELP, EXIT_FAILED, CliError, guarded
from cli.submit import NodeUrl
from contracts import opendata
from ledger.jsonview import committed_block_from_json

BLOCKS_MAX = 10_000_000


class Dataset(StrEnum):
    deliberations = "deliberations"
    aid = "aid"
    reports = "reports"


def committed_records(client: NodeClient) -> Iterator[opendata.Record]:
    """(transaction, receipt, header) of every committed transaction, in commit order."""
    head = client.get_raw("/v1/blocks/latest")
    if head is None:
        return
    height = int(head.get("height", 0))
    if not 0 <= height <= BLOCKS_MAX:
        raise CliError(f"the node reports an implausible height {height}", EXIT_FAILED)
    for h in range(1, height + 1):
        block = committed_block_from_json(client.get(f"/v1/blocks/{h}"), f"block {h}")
        header = block.block.header
        for tx, receipt in zip(block.block.transactions, block.receipts, strict=False):
            yield tx, receipt, header


def render(dataset: Dataset, records: list[opendata.Record], all_versions: bool,
           min_count: int) -> str:
    if dataset is Dataset.deliberations:
        return opendata.deliberations_csv(records, current_only=not all_versions)
    if dataset is Dataset.aid:
        return opendata.social_aid_csv(opendata.social_aid_aggregates(records,
                                                                      min_count=min_count))
    return opendata.service_requests_json(records)


def export(
    dataset: Annotated[Dataset, typer.Argument(
        help="deliberations (SCDL CSV), aid (aggregates CSV) or reports (Open311 JSON).")],
    node: NodeUrl,
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    all_versions: Annotated[bool, typer.Option(
        "--all-versions", help="Deliberations: every recorded version, not only current.")
    ] = False,
    min_count: Annotated[int, typer.Option(
        "--min-count", help="Aid: suppress cells with fewer payments than this.", min=1)
    ] = opendata.SUPPRESSION_MIN_COUNT,
) -> None:
    """Export open data (SCDL deliberations, aid aggregates, Open311 reports) from a node.

    Example: tabellion export deliberations --node http://127.0.0.1:7100 --out deliberations.csv
    """
    with NodeClient(node) as client:
        records = list(committed_records(client))
    text = render(dataset, records, all_versions, min_count)
    temporary = out.with_name(f".{out.name}.partial")
    temporary.write_text(text, encoding="utf-8", newline="")
    os.replace(temporary, out)
    typer.echo(f"wrote {out} ({dataset.value}, from {len(records)} committed transactions)")


def register(app: typer.Typer) -> None:
    app.command("export", epilog=EXIT_CODES_HELP)(guarded(export))
