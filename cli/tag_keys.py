"""The social service's off-chain keys for beneficiary tags, and crypto-shredding.

Threat model and reasons: docs/adr/0014-aid-privacy-and-read-access.md.

Rules:
- Two secrets stay on the social service's machine, never on chain:
  - the municipality's master tag key (``beneficiary-tag.key``, 32 random bytes in hex,
    written by ``tabellion network init``);
  - the case file (``<tag key>.cases.json``, mode 0600): for each case number, a random
    32-byte pseudonym, drawn the first time the case is paid.
- A payment's tag is ``HMAC-SHA-256(period key, pseudonym)`` where the period key is
  ``contracts.social_aid.period_tag_key(master, siret, scheme, month)``: tags of one
  household differ from month to month and scheme to scheme, and nothing on chain
  derives from the case number (sequential numbers cannot be enumerated).
- Erasing a beneficiary (GDPR art. 17; CNIL 2018 guidance on blockchains: erase the
  means of linking) is ``forget``: the case's pseudonym is deleted and the file rewritten
  atomically (temporary file, fsync, rename, fsync of the directory). Without the
  pseudonym, no key held by anyone links the tags on chain to the case any more: the
  master key alone computes nothing that matches. Paying the same case number later
  draws a new pseudonym (a new, unlinked series of tags).
- Bounded: at most ``CASES_MAX`` cases and ``CASE_FILE_BYTES_MAX`` bytes; a damaged file
  is reported with what to do, never silently replaced.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from cli.common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    guarded,
    read_input_file,
)
from cli.network import load_tag_key
from contracts.social_aid import CASE_NUMBER_BYTES_MAX, beneficiary_tag, period_tag_key

CASES_MAX = 1_000_000
CASE_FILE_BYTES_MAX = 256 * 1024 * 1024
PSEUDONYM_BYTES = 32
CASE_FILE_SUFFIX = ".cases.json"
CASE_FILE_VERSION = 1
_PSEUDONYM_RE = re.compile(r"^[0-9a-f]{64}$")


def case_file_of(tag_key_path: Path) -> Path:
    """Where the case file of a tag key lives by default: next to it."""
    return tag_key_path.with_name(tag_key_path.name + CASE_FILE_SUFFIX)


@dataclass(slots=True)
class CaseKeys:
    """The master tag key and the case pseudonyms of one municipality."""

    master_key: bytes
    path: Path
    pseudonyms: dict[str, str]
    """Case number (stripped) -> pseudonym (64 hex)."""

    @classmethod
    def open(cls, tag_key_path: Path, case_file: Path | None = None) -> CaseKeys:
        """Load the master key and the case file (empty if it does not exist yet)."""
        path = case_file if case_file is not None else case_file_of(tag_key_path)
        return cls(load_tag_key(tag_key_path), path, _read_cases(path))

    def tag(self, case_number: str, siret: str, scheme_id: str, period: str) -> str:
        """The tag of ``case_number`` for one scheme and month; draws (and saves) the
        case's pseudonym the first time."""
        case = _normalised(case_number)
        pseudonym = self.pseudonyms.get(case)
        if pseudonym is None:
            if len(self.pseudonyms) >= CASES_MAX:
                raise CliError(f"{self.path} holds {CASES_MAX} cases, the limit; forget "
                               "closed cases first", EXIT_USAGE)
            pseudonym = secrets.token_bytes(PSEUDONYM_BYTES).hex()
            self.pseudonyms[case] = pseudonym
            self.save()
        return beneficiary_tag(period_tag_key(self.master_key, siret, scheme_id, period),
                               pseudonym)

    def forget(self, case_number: str) -> bool:
        """Crypto-shred a case: delete its pseudonym for good. ``False`` if unknown."""
        case = _normalised(case_number)
        if self.pseudonyms.pop(case, None) is None:
            return False
        self.save()
        return True

    def save(self) -> None:
        """Rewrite the case file atomically with mode 0600."""
        data = json.dumps({"version": CASE_FILE_VERSION, "cases": self.pseudonyms},
                          ensure_ascii=False, sort_keys=True).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _normalised(case_number: str) -> str:
    case = case_number.strip()
    if not case or len(case.encode("utf-8")) > CASE_NUMBER_BYTES_MAX:
        raise CliError(f"the case number must be 1 to {CASE_NUMBER_BYTES_MAX} bytes",
                       EXIT_USAGE)
    return case


def _read_cases(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    text = read_input_file(path, CASE_FILE_BYTES_MAX, "case file")
    try:
        doc = json.loads(text)
        cases = doc["cases"]
        if doc.get("version") != CASE_FILE_VERSION or not isinstance(cases, dict):
            raise ValueError("unknown version or layout")
        for case, pseudonym in cases.items():
            if not isinstance(pseudonym, str) or not _PSEUDONYM_RE.fullmatch(pseudonym):
                raise ValueError(f"case {case!r} has no valid pseudonym")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CliError(f"{path} is damaged ({exc}); restore it from the social service's "
                       "backup (without it, past tags cannot be recomputed)", EXIT_USAGE
                       ) from exc
    return {str(case): str(pseudonym) for case, pseudonym in cases.items()}


# --------------------------------------------------------------------------- command
aid_app = typer.Typer(help="The social service's beneficiary keys (kept off chain).",
                      epilog=EXIT_CODES_HELP, no_args_is_help=True)


@aid_app.command("forget", epilog=EXIT_CODES_HELP)
@guarded
def forget_command(
    case_number: Annotated[str, typer.Option(
        "--case-number", help="The beneficiary's case number.")],
    tag_key: Annotated[Path, typer.Option(
        "--tag-key", help="The municipality's beneficiary-tag key file.")],
    cases: Annotated[Path | None, typer.Option(
        "--cases", help="The case file (default: <tag key>.cases.json).")] = None,
) -> None:
    """Erase a beneficiary (crypto-shredding): destroy the case's pseudonym, so that no
    tag on chain can be linked to the case any more. Irreversible; exit 1 if unknown.

    Example: tabellion aid forget --case-number CCAS-2026-0042 --tag-key beneficiary-tag.key
    """
    keys = CaseKeys.open(tag_key, cases)
    if not keys.forget(case_number):
        raise CliError(f"no case {case_number.strip()!r} in {keys.path}: nothing to erase "
                       "(check the case number and the --cases file)", EXIT_FAILED)
    typer.echo(f"case erased from {keys.path}: its payments on chain can no longer be "
               "linked to it")
