"""``tabellion export``: the open-data files, built from what a node committed.

Rules:
- The records come from the node's committed blocks (``GET /v1/blocks/{h}``, each parsed
  with ``ledger.jsonview`` which rejects anything malformed); the formats are those of
  ``contracts.opendata`` (pure functions), so every export of the same chain is the same
  file, byte for byte, whichever node served it.
- Only committed transactions whose receipt is ``ok`` count (``contracts.opendata``).
- Social aid leaves as aggregates with small counts suppressed, never row by row. The
  node hides payments from public readers (ADR 0014): the aid export needs ``--key``, a
  member of the paying town or an auditor, and refuses to count from a partial view.
  The other exports skip the hidden payments (they never count them anyway).
- The file is written whole, to a temporary name then renamed, so an interrupted export
  never leaves half a file under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.client import NodeClient
from cli.common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    CliError,
    PassphraseEnv,
    PassphraseFile,
    guarded,
)
from cli.submit import NodeUrl, load_signing_key
from contracts import opendata
from ledger.jsonview import committed_block_from_json

BLOCKS_MAX = 10_000_000


class Dataset(StrEnum):
    deliberations = "deliberations"
    aid = "aid"
    reports = "reports"


def committed_records(client: NodeClient, hidden: list[int] | None = None
                      ) -> Iterator[opendata.Record]:
    """(transaction, receipt, header) of every committed transaction this reader may
    see, in commit order; the heights of payments hidden from it go to ``hidden``."""
    head = client.get_raw("/v1/blocks/latest")
    if head is None:
        return
    height = int(head.get("height", 0))
    if not 0 <= height <= BLOCKS_MAX:
        raise CliError(f"the node reports an implausible height {height}", EXIT_FAILED)
    for h in range(1, height + 1):
        found = client.get(f"/v1/blocks/{h}")
        items = found.get("transactions")
        if isinstance(items, list) and any(isinstance(i, dict) and i.get("redacted")
                                           for i in items):
            if hidden is not None:
                hidden.append(h)
            found = {**found, **_without_redacted(found)}
        block = committed_block_from_json(found, f"block {h}")
        header = block.block.header
        for tx, receipt in zip(block.block.transactions, block.receipts, strict=False):
            yield tx, receipt, header


def _without_redacted(block: dict[str, Any]) -> dict[str, Any]:
    """The block's transactions and receipts minus the hidden payments."""
    pairs = [(t, r) for t, r in zip(block["transactions"], block.get("receipts", []),
                                    strict=False)
             if not (isinstance(t, dict) and t.get("redacted"))]
    return {"transactions": [t for t, _ in pairs], "receipts": [r for _, r in pairs]}


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
    key: Annotated[Path | None, typer.Option(
        "--key", help="Aid: your key (member of the paying town, or an auditor): the "
        "node shows payments only to signed reads.")] = None,
    passphrase_env: PassphraseEnv = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Export open data (SCDL deliberations, aid aggregates, Open311 reports) from a node.

    Example: tabellion export deliberations --node http://127.0.0.1:7100 --out deliberations.csv
    """
    reader = None if key is None else load_signing_key(key, passphrase_env, passphrase_file)
    hidden: list[int] = []
    with NodeClient(node, reader=reader) as client:
        records = list(committed_records(client, hidden))
    if dataset is Dataset.aid and hidden:
        raise CliError(f"the node hid social-aid payments from this reader (first at height "
                       f"{hidden[0]}): aggregates from a partial view would be wrong; give "
                       "--key of an auditor (or of the town's agent, admin or auditor)",
                       EXIT_FAILED)
    text = render(dataset, records, all_versions, min_count)
    temporary = out.with_name(f".{out.name}.partial")
    temporary.write_text(text, encoding="utf-8", newline="")
    os.replace(temporary, out)
    typer.echo(f"wrote {out} ({dataset.value}, from {len(records)} committed transactions)")


def register(app: typer.Typer) -> None:
    app.command("export", epilog=EXIT_CODES_HELP)(guarded(export))
