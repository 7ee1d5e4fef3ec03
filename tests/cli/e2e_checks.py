"""Checks of the CLI against a running four-node network (the demo's, see test_demo.py:
one network for every check keeps the suite fast). Each ``check_*`` drives real commands
against real nodes started with the image's entry command (``tabellion node start``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner

from cli.main import app
from cli.network import CONTAINER_API_PORT, HEALTHCHECK_SCRIPT, Network
from cli.tag_keys import CaseKeys
from testkit.wait import wait_for
from tests.cli.conftest import assert_one_line_error, run_cli

TX_ID_RE = re.compile(r"transaction ([0-9a-f]{64}): committed")


def _who(network: Network, index: int, role: str) -> list[str]:
    m = network.municipalities[index]
    return ["--key", str(network.key_of(m, role)), "--passphrase-file",
            str(network.passphrase_of(m, role)), "--node", m.api_url]


def _committed_id(output: str) -> str:
    match = TX_ID_RE.search(output)
    assert match, output
    return match.group(1)


def check_image_health_check_passes_against_a_running_node(network: Network,
                                                          ) -> None:
    m = network.municipalities[0]
    script = HEALTHCHECK_SCRIPT.replace(f":{CONTAINER_API_PORT}/", f":{m.api_port}/")
    assert subprocess.run([sys.executable, "-c", script], timeout=30, check=False
                          ).returncode == 0


def check_submit_wait_prints_the_receipt_and_height_then_tx_show_finds_it(
        network: Network, tmp_path: Path) -> None:
    m = network.municipalities[1]
    payload = tmp_path / "anchor.json"
    payload.write_text(json.dumps({"siret": m.siret, "sha256": "cd" * 32,
                                   "document_type": "contrat", "reference": "C-2026-7"}))
    result = run_cli("submit", "notary", "anchor", "--payload", str(payload), "--wait",
                     *_who(network, 1, "clerk"))
    assert result.returncode == 0, result.stderr
    assert "receipt: ok" in result.stdout and re.search(r"height: \d+", result.stdout)
    tx_id = _committed_id(result.stdout)
    # Any node knows it once committed; ask another one.
    other = network.municipalities[2].api_url
    wait_for(lambda: httpx.get(f"{other}/v1/transactions/{tx_id}", timeout=10).status_code
          == 200, 60, "the transaction on another node")
    shown = CliRunner().invoke(app, ["tx", "show", tx_id, "--node", other, "--json"])
    assert shown.exit_code == 0, shown.stderr
    details = json.loads(shown.stdout)
    assert details["status"] == "committed" and details["receipt"]["code"] == "ok"


def check_record_commands_commit_every_record_type(network: Network,
                                                  tmp_path: Path) -> None:
    runner = CliRunner()
    m = network.municipalities[0]
    clerk, agent = _who(network, 0, "clerk"), _who(network, 0, "social_aid_agent")

    def ok(*args: str) -> str:
        result = runner.invoke(app, [*args, "--wait"])
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        assert "receipt: ok" in result.stdout
        return _committed_id(result.stdout)

    ok("record", "sitting", "--sitting", "CM-E2E", "--date", "2026-01-15", "--in-office",
       "33", "--present", "30", *clerk)
    csv_file = tmp_path / "delib.csv"
    csv_file.write_text(
        "COLL_NOM,COLL_SIRET,DELIB_ID,DELIB_DATE,DELIB_MATIERE_CODE,DELIB_MATIERE_NOM,"
        "DELIB_OBJET,VOTE_EFFECTIF,VOTE_REEL,VOTE_POUR,VOTE_CONTRE,VOTE_ABSTENTION\n"
        f"Montreuil,{m.siret},D-E2E-1,2026-01-15,7.1,Budget,Budget primitif,33,30,25,3,2\n")
    act = tmp_path / "act.pdf"
    act.write_bytes(b"%PDF-1.7 signed act")
    ok("record", "deliberation", "--csv", str(csv_file), "--sitting", "CM-E2E", "--order",
       "1", "--present", "30", "--act", str(act), *clerk)
    # The council decides the aid scheme and its terms; only the admin creates it.
    decision = tmp_path / "aid.json"
    decision.write_text(json.dumps({
        "COLL_NOM": "Montreuil", "COLL_SIRET": m.siret, "DELIB_ID": "D-E2E-AID",
        "DELIB_DATE": "2026-01-15", "DELIB_MATIERE_CODE": "8.2",
        "DELIB_MATIERE_NOM": "Aide sociale", "DELIB_OBJET": "Création de l'aide E2E",
        "VOTE_EFFECTIF": 33, "VOTE_REEL": 30, "VOTE_POUR": 25, "VOTE_CONTRE": 3,
        "VOTE_ABSTENTION": 2, "aid_budget_cents": 100_000, "aid_ceiling_cents": 20_000,
        "aid_four_eyes_threshold_cents": 50_000}))
    ok("record", "deliberation", "--json", str(decision), "--sitting", "CM-E2E", "--order",
       "2", "--present", "30", "--act-sha256", "ab" * 32, *clerk)
    ok("record", "scheme", "--scheme", "e2e", "--name", "Aide E2E", "--budget-cents",
       "100000", "--from", "2026-01", "--to", "2026-12", "--ceiling-cents", "20000",
       "--decision", "D-E2E-AID", "--four-eyes-cents", "50000", *_who(network, 0, "admin"))
    tag_key = network.tag_key_of(m)
    paid = ok("record", "disbursement", "--scheme", "e2e", "--period", "2026-02",
              "--amount-cents", "15000", "--case-number", "CCAS-SECRET-77", "--tag-key",
              str(tag_key), *agent)
    ok("record", "report", "--service", "pothole", "--description", "Hole, rue Hoche",
       "--lat", "48.8638", "--long", "2.4485", *clerk)
    doc = tmp_path / "arrete.txt"
    doc.write_text("Arrêté municipal n° 42")
    ok("record", "notarise", str(doc), "--type", "arrete", "--reference", "ARR-E2E",
       *clerk)

    details = json.loads(runner.invoke(app, ["tx", "show", paid, *agent,
                                             "--json"]).stdout)
    sent = json.dumps(details)
    assert "CCAS-SECRET-77" not in sent  # the case number never left the machine
    # Keyed per scheme and month, from the case's pseudonym in the social service's file.
    assert details["transaction"]["payload"]["beneficiary"] == CaseKeys.open(tag_key).tag(
        "CCAS-SECRET-77", m.siret, "e2e", "2026-02")

    # The same payment again breaks "one payment per beneficiary and month": exit 1.
    again = runner.invoke(app, ["record", "disbursement", "--scheme", "e2e", "--period",
                                "2026-02", "--amount-cents", "100", "--case-number",
                                "CCAS-SECRET-77", "--tag-key", str(tag_key), "--wait",
                                *agent])
    assert again.exit_code == 1, again.stdout
    assert "duplicate_payment" in again.stderr


def check_refusals_by_the_network_exit_1_with_the_reason(network: Network,
                                                         ) -> None:
    other = network.municipalities[3]
    # A clerk of Montreuil writing for Romainville is refused at admission.
    foreign = run_cli("record", "notarise", str(network.genesis_file), "--type", "arrete",
                      "--reference", "X-1", "--siret", other.siret, *_who(network, 0, "clerk"))
    assert_one_line_error(foreign, 1, "the node refused")
    # An auditor may not anchor documents.
    auditor = CliRunner().invoke(app, ["record", "notarise", str(network.genesis_file),
                                       "--type", "arrete", "--reference", "X-2",
                                       *_who(network, 0, "auditor")])
    assert auditor.exit_code == 1, auditor.stdout
    assert auditor.stderr.startswith("error: the node refused")


def check_status_shows_every_node_on_the_same_chain(network: Network,
                                                   ) -> None:
    statuses = []
    for m in network.municipalities:
        result = CliRunner().invoke(app, ["status", "--node", m.api_url, "--json"])
        assert result.exit_code == 0, result.stderr
        statuses.append(json.loads(result.stdout))
    assert {s["chain_id"] for s in statuses} == {network.chain_id}
    table = run_cli("status", "--node", network.municipalities[0].api_url)
    assert "head_hash" in table.stdout and "primary" in table.stdout

    def same_head() -> bool:
        heads = [httpx.get(f"{m.api_url}/v1/status", timeout=10).json()
                 for m in network.municipalities]
        return len({(h["height"], h["head_hash"]) for h in heads}) == 1

    wait_for(same_head, 60, "the four nodes to agree on the head")


def check_export_writes_the_open_data_files(network: Network,
                                           tmp_path: Path) -> None:
    url = network.municipalities[0].api_url
    # Make sure at least one deliberation is committed (the record test may run elsewhere).
    runner = CliRunner()
    clerk = _who(network, 2, "clerk")
    m = network.municipalities[2]
    for args in (
        ["record", "sitting", "--sitting", "CM-EXP", "--date", "2026-01-10", "--in-office",
         "29", "--present", "20", *clerk, "--wait"],
        ["record", "deliberation", "--json", str(_delib_json(tmp_path, m.name, m.siret)),
         "--sitting", "CM-EXP", "--order", "1", "--present", "20", "--act-sha256", "ef" * 32,
         *clerk, "--wait"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (result.stdout, result.stderr)
    out = tmp_path / "deliberations.csv"
    exported = run_cli("export", "deliberations", "--node", url, "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    lines = out.read_text().splitlines()
    assert lines[0].startswith("COLL_NOM,COLL_SIRET,DELIB_ID,DELIB_DATE")
    assert any("D-EXP-1" in line and m.siret in line for line in lines[1:])
    reports = tmp_path / "reports.json"
    assert runner.invoke(app, ["export", "reports", "--node", url, "--out", str(reports)]
                         ).exit_code == 0
    assert isinstance(json.loads(reports.read_text()), list)
    aid = tmp_path / "aid.csv"
    # Aid aggregates are computed from the payments: an auditor's signed reads.
    public = runner.invoke(app, ["export", "aid", "--node", url, "--out", str(aid)])
    assert public.exit_code == 1 and "--key" in public.stderr
    assert runner.invoke(app, ["export", "aid", "--out", str(aid),
                               *_who(network, 0, "auditor")]).exit_code == 0
    assert aid.read_text().startswith("siret,scheme_id,month,payments,total_cents")


def _delib_json(tmp_path: Path, name: str, siret: str) -> Path:
    path = tmp_path / "delib.json"
    path.write_text(json.dumps({
        "COLL_NOM": name, "COLL_SIRET": siret, "DELIB_ID": "D-EXP-1",
        "DELIB_DATE": "2026-01-10", "DELIB_MATIERE_CODE": "8.5", "DELIB_MATIERE_NOM":
        "Politique de la ville", "DELIB_OBJET": "Convention de quartier",
        "VOTE_EFFECTIF": 29, "VOTE_REEL": 20, "VOTE_POUR": 15, "VOTE_CONTRE": 5,
        "VOTE_ABSTENTION": 0}, ensure_ascii=False))
    return path



def check_every_command_against(network: Network, tmp_path: Path) -> None:
    """Every check above, in an order where each finds what the previous committed."""
    for name in ("submit", "records", "export"):
        (tmp_path / name).mkdir(parents=True)
    check_image_health_check_passes_against_a_running_node(network)
    check_submit_wait_prints_the_receipt_and_height_then_tx_show_finds_it(
        network, tmp_path / "submit")
    check_record_commands_commit_every_record_type(network, tmp_path / "records")
    check_refusals_by_the_network_exit_1_with_the_reason(network)
    check_status_shows_every_node_on_the_same_chain(network)
    check_export_writes_the_open_data_files(network, tmp_path / "export")
