"""Notarisation: anchor the SHA-256 of a document to prove its existence and integrity.

Rules:
- An anchor is the document's SHA-256 (64 lowercase hex), a document type, a reference
  and, for the record, the anchoring municipality, block height and block time.
- One anchor per hash, network-wide: anchoring a hash again is refused
  (``already_anchored``) so the earliest date stays the only one.
- The document itself never goes on chain; anyone holding it recomputes the hash and
  looks it up.
"""

from __future__ import annotations

import re
from typing import Any

from contracts import keys
from contracts.registry import SIRET, Action, Context, Contract, hex64, reject, text
from contracts.view import StateView
from ledger.encoding import Value

DOCUMENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def notarised(state: StateView, sha256_hex: str) -> dict[str, Any] | None:
    """The anchor of a document hash (hex), or ``None`` if it was never anchored."""
    if not keys.HEX64_RE.fullmatch(sha256_hex):
        return None
    return keys.read_map(state, keys.notary_key(sha256_hex))


def _validate_anchor(ctx: Context) -> None:
    found = notarised(ctx.state, ctx.payload["sha256"])
    if found is not None:
        reject("already_anchored",
               f"this document was already anchored at height {found['height']} by "
               f"municipality {found['siret']} ({found['document_type']} "
               f"{found['reference']}); look it up instead")


def _apply_anchor(ctx: Context) -> dict[str, Value]:
    p = ctx.payload
    keys.write(ctx.state, keys.notary_key(p["sha256"]), {
        "sha256": p["sha256"], "siret": p["siret"], "document_type": p["document_type"],
        "reference": p["reference"], "title": p.get("title"), "height": ctx.env.height,
        "time_ms": ctx.env.time_ms, "signer": ctx.signer.key_hex,
    })
    return {"sha256": p["sha256"], "height": ctx.env.height, "time_ms": ctx.env.time_ms}


CONTRACT = Contract("notary", (
    Action("anchor", (
        SIRET,
        hex64("sha256", doc="SHA-256 of the document, lowercase hex."),
        text("document_type", 32, pattern=DOCUMENT_TYPE_RE,
             hint="lowercase letters, digits or '_' (e.g. arrete, contrat, proces_verbal)",
             doc="Kind of document: arrete, contrat, proces_verbal..."),
        text("reference", 128, doc="Reference of the document (e.g. 'ARR-2026-042')."),
        text("title", 256, required=False, doc="Title (no personal data)."),
    ), ("clerk", "admin"), "siret", _validate_anchor, _apply_anchor,
        "Anchor a document hash."),
), "Document hashes anchored with type and reference.")
