"""Beneficiary tags keyed per scheme and month, and crypto-shredding (cli.tag_keys).

A social service pays households across months and schemes with tags from its case
file, then erases one household: afterwards nothing held by anyone (master key, the
remaining case file, the whole chain) links a tag on chain back to that case.
"""

from __future__ import annotations

import json
import secrets
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.common import CliError
from cli.main import app
from cli.tag_keys import CaseKeys, case_file_of
from contracts.social_aid import beneficiary_tag, period_tag_key
from tests.vectors.contracts.scenario import Chain, open_scheme, siret

MONTREUIL = siret("montreuil")
MONTHS = ("2026-01", "2026-02", "2026-03")
HOUSEHOLDS = ("CCAS-2026-00041", "CCAS-2026-00042", "CCAS-2026-00043")


@pytest.fixture
def tag_key(tmp_path: Path) -> Path:
    path = tmp_path / "beneficiary-tag.key"
    path.write_text(secrets.token_bytes(32).hex())
    return path


def _chain_bytes(chain: Chain) -> bytes:
    """Every byte the chain holds: blocks' transactions, receipts and the state."""
    return b"".join(
        [tx.encode() for _, txs in chain.log for tx in txs]
        + [r.encode() for result in chain.results for r in result.receipts]
        + [k + v for k, v in chain.state.items().items()])


def _pay_everyone(chain: Chain, keys: CaseKeys) -> dict[str, set[str]]:
    """Pay each household each month from two schemes; return each one's tags."""
    tags: dict[str, set[str]] = {case: set() for case in HOUSEHOLDS}
    for scheme_id in ("energie-2026", "cantine-2026"):
        assert open_scheme(chain, scheme_id=scheme_id).ok
        for month in MONTHS:
            for case in HOUSEHOLDS:
                tag = keys.tag(case, MONTREUIL, scheme_id, month)
                receipt = chain.do("montreuil.agent", "social_aid", "disburse", {
                    "siret": MONTREUIL, "scheme_id": scheme_id, "period": month,
                    "amount_cents": 5_000, "beneficiary": tag})
                assert receipt.ok, receipt.message
                tags[case].add(tag)
    return tags


def test_tags_differ_per_scheme_and_month_and_never_derive_from_the_case(
        tag_key: Path) -> None:
    keys = CaseKeys.open(tag_key)
    chain = Chain()
    tags = _pay_everyone(chain, keys)
    assert all(len(t) == 2 * len(MONTHS) for t in tags.values()), "no tag repeats"
    stored = _chain_bytes(chain)
    master = tag_key.read_text().strip()
    for case, own in tags.items():
        assert case.encode() not in stored
        # Knowing the master key and the case number is not enough: the tag hashes a
        # random pseudonym, so sequential case numbers cannot be enumerated.
        guessed = beneficiary_tag(period_tag_key(bytes.fromhex(master), MONTREUIL,
                                                 "energie-2026", "2026-01"), case)
        assert guessed not in own and guessed.encode() not in stored
    assert stat.S_IMODE(case_file_of(tag_key).stat().st_mode) == 0o600
    again = CaseKeys.open(tag_key)  # the pseudonyms survive a restart
    assert again.tag(HOUSEHOLDS[0], MONTREUIL, "energie-2026", "2026-01") in tags[HOUSEHOLDS[0]]


def test_forgetting_a_case_leaves_nothing_linkable(tag_key: Path) -> None:
    keys = CaseKeys.open(tag_key)
    chain = Chain()
    tags = _pay_everyone(chain, keys)
    erased = HOUSEHOLDS[1]
    old_pseudonym = keys.pseudonyms[erased]

    result = CliRunner().invoke(app, ["aid", "forget", "--case-number", erased,
                                      "--tag-key", str(tag_key)])
    assert result.exit_code == 0, result.output
    assert "can no longer be linked" in result.stdout

    case_file = case_file_of(tag_key).read_text(encoding="utf-8")
    assert erased not in case_file and old_pseudonym not in case_file
    kept = CaseKeys.open(tag_key)
    assert set(kept.pseudonyms) == {HOUSEHOLDS[0], HOUSEHOLDS[2]}
    # Everything the municipality still holds, applied to every scheme-month on chain,
    # yields only the other households' tags: the erased tags link to nobody.
    master = bytes.fromhex(tag_key.read_text().strip())
    computable = {
        beneficiary_tag(period_tag_key(master, MONTREUIL, scheme_id, month), secret)
        for scheme_id in ("energie-2026", "cantine-2026") for month in MONTHS
        for secret in (*kept.pseudonyms.values(), *HOUSEHOLDS)
    }
    assert computable.isdisjoint(tags[erased])
    assert tags[HOUSEHOLDS[0]] | tags[HOUSEHOLDS[2]] <= computable
    stored = _chain_bytes(chain)
    assert erased.encode() not in stored and old_pseudonym.encode() not in stored
    assert all(tag.encode() in stored for tag in tags[erased])  # the payments remain
    # Paying the same case number again starts a new, unlinked series of tags.
    fresh = kept.tag(erased, MONTREUIL, "energie-2026", "2026-01")
    assert fresh not in tags[erased]


def test_forgetting_an_unknown_case_exits_1_and_a_damaged_file_is_reported(
        tag_key: Path) -> None:
    result = CliRunner().invoke(app, ["aid", "forget", "--case-number", "CCAS-404",
                                      "--tag-key", str(tag_key)])
    assert result.exit_code == 1
    assert "nothing to erase" in result.stderr
    case_file_of(tag_key).write_text(json.dumps({"version": 1, "cases": {"X": "zz"}}))
    with pytest.raises(CliError, match="is damaged"):
        CaseKeys.open(tag_key)
