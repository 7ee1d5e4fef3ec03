"""The parts of ``tabellion record`` that run before anything is sent: CSV rows of the
SCDL schema, exact coordinates, local hashing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cli.common import CliError
from cli.records import deliberation_from_csv, micro_degrees, sha256_file
from cli.submit import check_action
from contracts.deliberations import MEMBERS_IN_OFFICE_MAX, SCDL_FIELDS
from contracts.social_aid import CENTS_MAX
from tests.cli.conftest import assert_one_line_error, invoke_cli

SIRET_OK = "21930048000015"  # Montreuil: a SIRET with a valid check digit


def test_scdl_csv_row_becomes_a_checked_payload(tmp_path: Path) -> None:
    path = tmp_path / "delib.csv"
    rows = [
        ";".join(SCDL_FIELDS),
        "Montreuil;21930048000015;D2026-040;2026-11-20;7.1;Décisions budgétaires;"
        "Budget; 2026;Principal;;;35;30;20;8;2;https://montreuil.fr/d40",
        "Montreuil;21930048000015;D2026-041;2026-11-20;9.1;Autres;Vœu;;;;;;;;;;",
    ]
    path.write_text("\ufeff" + "\n".join(rows) + "\n", encoding="utf-8")
    first = deliberation_from_csv(path, 1)
    assert first["DELIB_ID"] == "D2026-040"
    assert first["BUDGET_ANNEE"] == "2026"
    assert (first["VOTE_EFFECTIF"], first["VOTE_POUR"], first["VOTE_ABSTENTION"]) == (35, 20, 2)
    second = deliberation_from_csv(path, 2)
    assert "VOTE_POUR" not in second and "BUDGET_ANNEE" not in second
    full = {**first, "act_sha256": "00" * 32, "sitting_id": "CM-1", "order_number": 1,
            "members_present": 30}
    check_action("deliberations", "record", full)
    with pytest.raises(CliError, match="no row 3"):
        deliberation_from_csv(path, 3)


def test_csv_without_scdl_columns_or_with_bad_votes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("name,amount\nx,1\n")
    with pytest.raises(CliError, match="COLL_SIRET, DELIB_ID, DELIB_DATE"):
        deliberation_from_csv(path, 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("COLL_SIRET,DELIB_ID,DELIB_DATE,VOTE_POUR\n21930048000015,D1,2026-01-01,"
                   "twelve\n")
    with pytest.raises(CliError, match="VOTE_POUR must be a whole number"):
        deliberation_from_csv(bad, 1)


def test_coordinates_are_exact_micro_degrees() -> None:
    assert micro_degrees("48.8638", "lat", 90) == 48_863_800
    assert micro_degrees("-0.000001", "long", 180) == -1
    assert micro_degrees("2.448512", "long", 180) == 2_448_512
    for bad in ("91", "1.0000001", "north", "nan", "inf"):
        with pytest.raises(CliError):
            micro_degrees(bad, "lat", 90)


def test_files_are_hashed_locally(tmp_path: Path) -> None:
    path = tmp_path / "arrete.pdf"
    data = bytes(range(256)) * 5000
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


# ------------------------------------------------- options derived from the contracts' fields


def _help(*command: str) -> str:
    result = invoke_cli("record", *command, "--help", env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())


def test_record_help_shows_each_field_with_the_contracts_limits() -> None:
    scheme = _help("scheme")
    assert f"1<=x<={CENTS_MAX}" in scheme  # --budget-cents: the contract's bound
    assert f"0<=x<={CENTS_MAX}" in scheme  # --four-eyes-cents
    assert "Must be 1 to 64 letters, digits" in scheme  # --scheme: the id pattern's hint
    sitting = _help("sitting")
    assert f"1<=x<={MEMBERS_IN_OFFICE_MAX}" in sitting  # --in-office
    notarise = _help("notarise")
    assert "At most 128 bytes" in notarise  # --reference
    assert "One of: open, secret" in _help("deliberation")  # --ballot
    for option in ("--siret", "--passphrase-env", "--passphrase-file", "--wait", "--chain-id"):
        assert option in scheme and option in notarise


def test_an_option_beyond_the_contracts_range_is_refused_before_the_key_is_read(
        tmp_path: Path) -> None:
    result = invoke_cli("record", "sitting", "--sitting", "CM-1", "--date", "2026-01-15",
                        "--in-office", "0", "--present", "0", "--key",
                        str(tmp_path / "absent.key"), "--node", "http://127.0.0.1:1")
    assert result.returncode == 2
    message = " ".join(result.stderr.replace("│", " ").split())
    assert "--in-office" in message and "greater than or equal to 1" in message


def test_a_field_the_contract_refuses_is_reported_before_the_passphrase(tmp_path: Path) -> None:
    document = tmp_path / "arrete.pdf"
    document.write_bytes(b"%PDF-1.7 arrete")
    assert_one_line_error(
        invoke_cli("record", "notarise", str(document), "--type", "Not A Type", "--reference",
                   "ARR-1", "--siret", SIRET_OK, "--key", str(tmp_path / "absent.key"),
                   "--node", "http://127.0.0.1:1"),
        2, "document_type")
