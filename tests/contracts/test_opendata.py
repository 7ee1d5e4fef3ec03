"""Open-data exports: SCDL CSV, suppressed aid aggregates, Open311 JSON."""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from typing import Any

from contracts.opendata import (
    Record,
    deliberations_csv,
    micro_degrees,
    service_requests_json,
    social_aid_aggregates,
    social_aid_csv,
)
from ledger.records import ZERO_HASH, BlockHeader, Transaction
from tests.vectors.contracts.scenario import (
    Chain,
    act,
    disbursement,
    report,
    scheme_steps,
    siret,
    sitting,
)

SCDL_HEADER = ("COLL_NOM,COLL_SIRET,DELIB_ID,DELIB_DATE,DELIB_MATIERE_CODE,DELIB_MATIERE_NOM,"
               "DELIB_OBJET,BUDGET_ANNEE,BUDGET_NOM,PREF_ID,PREF_DATE,VOTE_EFFECTIF,VOTE_REEL,"
               "VOTE_POUR,VOTE_CONTRE,VOTE_ABSTENTION,DELIB_URL")


class Recorder:
    """A chain that keeps its committed (transaction, receipt, header) records."""

    def __init__(self) -> None:
        self.chain = Chain()
        self.records: list[Record] = []

    def block(self, *txs: Transaction) -> None:
        env = self.chain.env()
        receipts = self.chain.block(*txs)
        header = BlockHeader(env.chain_id, env.height, ZERO_HASH, env.proposer, 0, env.time_ms,
                             ZERO_HASH, ZERO_HASH, ZERO_HASH, ZERO_HASH)
        self.records.extend((tx, r, header) for tx, r in zip(txs, receipts, strict=True))

    def do(self, signer: str, contract: str, action: str, payload: dict[str, Any]) -> None:
        self.block(self.chain.tx(signer, contract, action, payload))


def test_scdl_csv_has_the_schema_columns_and_current_versions() -> None:
    rec = Recorder()
    rec.do("montreuil.clerk", "deliberations", "record_sitting", sitting())
    rec.do("montreuil.clerk", "deliberations", "record",
           act(DELIB_OBJET='Tarifs "cantine", 2026', PREF_DATE="2026-01-01"))
    rec.do("montreuil.clerk", "deliberations", "record", act(delib_id="D2", order=2))
    rec.do("montreuil.clerk", "deliberations", "correct",
           act(delib_id="D2-R1", order=2, replaces="D2", DELIB_OBJET="Objet corrigé"))
    rec.do("montreuil.clerk", "deliberations", "record", act(delib_id="D3", order=3))
    rec.do("montreuil.clerk", "deliberations", "withdraw",
           {"COLL_SIRET": siret("montreuil"), "DELIB_ID": "D3-W", "DELIB_DATE": "2026-01-01",
            "replaces": "D3", "reason": "erreur", "act_sha256": "00" * 32})
    rec.do("montreuil.clerk", "deliberations", "record", act(delib_id="D4", sitting_id="NOPE"))
    text = deliberations_csv(rec.records)
    lines = text.split("\r\n")
    assert lines[0] == SCDL_HEADER
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["DELIB_ID"] for r in rows] == ["DEL-2026-001", "D2-R1"]
    assert rows[0]["DELIB_OBJET"] == 'Tarifs "cantine", 2026'
    assert rows[0]["VOTE_POUR"] == "20" and rows[0]["BUDGET_NOM"] == ""
    assert rows[0]["DELIB_DATE"] == "2026-01-01" and rows[0]["COLL_SIRET"] == "21930048000015"
    assert rows[1]["DELIB_OBJET"] == "Objet corrigé"
    every = list(csv.DictReader(io.StringIO(deliberations_csv(rec.records,
                                                             current_only=False))))
    assert [r["DELIB_ID"] for r in every] == ["DEL-2026-001", "D2", "D2-R1", "D3"]


def test_aid_aggregates_suppress_small_counts() -> None:
    rec = Recorder()
    for step in scheme_steps(threshold=20_000):
        rec.do(*step)
    rec.block(*(rec.chain.tx("montreuil.agent", "social_aid", "disburse",
                             disbursement(n=n, amount=1_000)) for n in range(12)))
    rec.block(*(rec.chain.tx("montreuil.agent", "social_aid", "disburse",
                             disbursement(n=n, amount=2_000, period="2026-02"))
                for n in range(3)))
    pending = disbursement(n=99, amount=25_000, period="2026-02")
    rec.do("montreuil.agent", "social_aid", "disburse", pending)
    del pending["amount_cents"]
    rec.do("montreuil.agent2", "social_aid", "approve", pending)
    rec.do("montreuil.agent", "social_aid", "disburse", disbursement(n=1, amount=1))  # refused
    rows = social_aid_aggregates(rec.records)
    assert [(a.month, a.payments, a.total_cents, a.suppressed) for a in rows] == [
        ("2026-01", 12, 12_000, False), ("2026-02", None, None, True)]
    low = social_aid_aggregates(rec.records, min_count=2)
    assert (low[1].payments, low[1].total_cents) == (4, 31_000)
    text = social_aid_csv(rows)
    assert text.split("\r\n")[2] == "21930048000015,energie-2026,2026-02,,,true"
    assert "CASE" not in text and disbursement(n=1)["beneficiary"] not in text


def test_open311_json() -> None:
    rec = Recorder()
    rec.do("montreuil.clerk", "reports", "submit", report())
    rec.do("montreuil.clerk", "reports", "submit",
           report(lat=None, long=None, address_string="Place Jean Jaurès"))
    first = str(rec.records[0][1].data["service_request_id"])
    rec.do("montreuil.clerk", "reports", "acknowledge",
           {"siret": siret("montreuil"), "service_request_id": first,
            "status_notes": "Équipe prévenue"})
    body = json.loads(service_requests_json(rec.records))
    assert [r["status"] for r in body] == ["open", "open"]
    assert body[0]["x_tabellion_status"] == "acknowledged"
    assert body[0]["status_notes"] == "Équipe prévenue"
    assert body[0]["lat"] == 48.8615 and body[0]["long"] == 2.4433
    assert body[0]["requested_datetime"] == "2026-01-01T00:01:00Z"
    assert body[0]["updated_datetime"] == "2026-01-01T00:03:00Z"
    assert body[1]["lat"] is None and body[1]["address"] == "Place Jean Jaurès"
    assert '"lat":48.8615' in service_requests_json(rec.records)


def test_micro_degrees_are_exact() -> None:
    assert micro_degrees(48_861_500) == "48.8615"
    assert micro_degrees(-1_500) == "-0.0015"
    assert micro_degrees(2_000_000) == "2.0"
    assert micro_degrees(-180_000_000) == "-180.0"


def test_metering_daily_and_annual_csv_per_building() -> None:
    from contracts.opendata import metering_annual, metering_csv, metering_daily
    from tests.vectors.contracts import scenario as s

    rec = Recorder()
    rec.do(*s.enroll_gateway())
    for meter_id, building in (("E-1", "ecole"), ("E-2", "ecole"), ("E-3", "mairie")):
        rec.do("montreuil.clerk", "metering", "enroll_meter",
               s.meter(meter_id, building=building))
    m = s.siret("montreuil")
    first = s.interval("2025-12-30", 23)
    # per meter: the opening reading and one interval on 30 December, one on the 31st;
    # E-3's batch is refused (its index goes backwards) and counts for nothing
    rec.do("montreuil.gateway", "metering", "file_readings",
           s.readings(("E-1", first, [0, 100, 250]), ("E-2", first, [10, 20, 60])))
    rec.do("montreuil.gateway", "metering", "file_readings",
           s.readings(("E-3", first, [500, 400])))
    daily = metering_csv(metering_daily(rec.records))
    assert daily.split("\r\n") == [
        "siret,building,kind,unit,date,consumption",
        f"{m},ecole,electricity,Wh,2025-12-30,110",
        f"{m},ecole,electricity,Wh,2025-12-31,190",
        "",
    ]
    annual = metering_csv(metering_annual(rec.records), annual=True)
    assert annual.split("\r\n") == ["siret,building,kind,unit,year,consumption",
                                    f"{m},ecole,electricity,Wh,2025,300", ""]


# ---------------------------------------------------------------- SCDL Délibérations 2.1.5
SCDL_2_1_5: tuple[tuple[str, bool, str], ...] = (
    ("COLL_NOM", True, r".+"),
    ("COLL_SIRET", True, r"\d{14}"),
    ("DELIB_ID", True, r".+"),
    ("DELIB_DATE", True, r"\d{4}-\d{2}-\d{2}"),
    ("DELIB_MATIERE_CODE", True, r"\d\.\d{1,2}"),
    ("DELIB_MATIERE_NOM", True, r".+"),
    ("DELIB_OBJET", True, r"(?s).+"),
    ("BUDGET_ANNEE", False, r"[0-9]{4}(/[0-9]{4})?"),
    ("BUDGET_NOM", False, r".+"),
    ("PREF_ID", False, r".+"),
    ("PREF_DATE", False, r"\d{4}-\d{2}-\d{2}"),
    ("VOTE_EFFECTIF", False, r"-?\d+"),
    ("VOTE_REEL", False, r"-?\d+"),
    ("VOTE_POUR", False, r"-?\d+"),
    ("VOTE_CONTRE", False, r"-?\d+"),
    ("VOTE_ABSTENTION", False, r"-?\d+"),
    ("DELIB_URL", False, r"[a-z][a-z0-9+.-]*://\S+"),
)
"""The SCDL Délibérations 2.1.5 table schema (schema.data.gouv.fr, scdl/deliberations):
column, required, and the pattern or type its values follow (dates ISO 8601, integers,
URIs). Missing values are empty strings."""
ACTES_LEVEL_2 = {f"{family}.{n}" for family, last in
                 (("1", 7), ("2", 3), ("3", 6), ("4", 5), ("5", 8), ("6", 5), ("7", 10),
                  ("8", 9), ("9", 4)) for n in range(1, last + 1)}


def _scdl_violations(text: str) -> list[str]:
    """Every way ``text`` breaks SCDL Délibérations 2.1.5 (empty if valid)."""
    found = []
    if text.startswith("\ufeff"):
        found.append("byte-order mark")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    if header != [name for name, _, _ in SCDL_2_1_5]:
        found.append(f"header {header}")
    for n, row in enumerate(reader, start=2):
        if len(row) != len(SCDL_2_1_5):
            found.append(f"row {n} has {len(row)} cells")
            continue
        for (name, required, pattern), value in zip(SCDL_2_1_5, row, strict=True):
            if value == "":
                if required:
                    found.append(f"row {n}: {name} is required")
                continue
            if not re.fullmatch(pattern, value):
                found.append(f"row {n}: {name} {value!r} does not match {pattern}")
            elif name.endswith("_DATE"):
                try:
                    datetime.date.fromisoformat(value)
                except ValueError:
                    found.append(f"row {n}: {name} {value!r} is not a date")
            if name == "DELIB_MATIERE_CODE" and value not in ACTES_LEVEL_2:
                found.append(f"row {n}: {value} is not an ACTES level-2 code")
    return found


def test_the_deliberations_export_is_a_valid_scdl_2_1_5_file() -> None:
    rec = Recorder()
    rec.do("montreuil.clerk", "deliberations", "record_sitting", sitting())
    rec.do("montreuil.clerk", "deliberations", "record", act(
        DELIB_OBJET='Tarifs "cantine", 2026;\nannexe jointe', BUDGET_ANNEE="2026",
        BUDGET_NOM="Budget principal", PREF_ID="PREF093", PREF_DATE="2026-01-01",
        DELIB_URL="https://montreuil.fr/deliberations/2026-001.pdf"))
    rec.do("montreuil.clerk", "deliberations", "record", act(
        delib_id="D2", order=2, votes=None, DELIB_MATIERE_CODE="8.4",
        DELIB_MATIERE_NOM="domaines de compétences par thèmes/aménagement du territoire"))
    rec.do("montreuil.clerk", "deliberations", "record", act(
        delib_id="D3", order=3, votes=(49, 30, 14, 14, 2), casting_vote="pour",
        DELIB_MATIERE_CODE="7.10", DELIB_MATIERE_NOM="Finances locales/Divers"))
    assert all(r.ok for _, r, _ in rec.records), [r.message for _, r, _ in rec.records]
    for current_only in (True, False):
        text = deliberations_csv(rec.records, current_only=current_only)
        assert _scdl_violations(text) == []
        assert len(list(csv.DictReader(io.StringIO(text)))) == 3
    # The checker is not blind: a broken file is caught.
    broken = deliberations_csv(rec.records).replace("7.10", "7.11").replace(
        siret("montreuil"), "2193004800001")
    assert len(_scdl_violations(broken)) == 4
