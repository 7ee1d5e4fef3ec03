"""The citizens' portal in a real headless Chromium, against a real four-node network.

One browser and one network serve the whole module (they take a few seconds to start).
What a citizen would notice is asserted: the pages list what the chain holds, a receipt
verifies green and a tampered one red naming the failed check, every receipt test vector
gets the same verdict in the browser as in Python, a dropped file is found, the report
history shows its steps, the pages are accessible and show no personal data.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from testkit.chainbuilder import BuilderSource, ChainBuilder
from testkit.populate import build_chain
from tests.portal.cdp import Browser
from tests.portal.network import PortalNetwork, notarised_document, portal_network
from tests.verify.test_receipt import EDITS
from verify.receipt import ReceiptError, gather_receipt, verify_receipt

PAGES = ("deliberations", "signalements", "aides", "documents", "verifier", "reseau")


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNetwork]:
    with portal_network(tmp_path_factory.mktemp("portal") / "demo") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    b = Browser()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(autouse=True)
def portal_home(browser: Browser, net: PortalNetwork) -> None:
    """Each test starts on the portal's home page, whatever ran before it in this worker
    (pytest-xdist may hand any test of this module to a worker on its own)."""
    browser.open(net.url + "/")


@pytest.fixture(scope="module")
def receipt_file(net: PortalNetwork, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tx_id = net.seeded_tx("deliberation", "Montreuil")
    height = int(next(r["height"] for r in net.seeded if r["tx_id"] == tx_id))
    lag = json.loads(net.genesis_file.read_text())["consensus"]["execution_lag"]
    net.advance(max(0, height + lag - net.height()))
    return net.receipt(tx_id, tmp_path_factory.mktemp("receipts") / "recu.json")


def verify_in_browser(browser: Browser, receipt: Path, genesis: Path) -> dict[str, str]:
    browser.go("#/verifier")
    browser.set_files("#fichier-recu", receipt)
    browser.set_files("#fichier-genese", genesis)
    browser.evaluate("document.getElementById('verifier').click(); true")
    browser.wait("document.getElementById('verdict') !== null", what="the verdict")
    return dict(browser.evaluate("""(() => {
        const v = document.getElementById('verdict');
        return {cls: v.className, text: v.innerText,
                part: document.getElementById('partie')?.innerText ?? '',
                genesis: document.getElementById('genese')?.innerText ?? ''};
    })()"""))


def test_a_deliberation_is_found_and_its_receipt_verifies_green(
    browser: Browser, net: PortalNetwork, receipt_file: Path
) -> None:
    assert browser.evaluate("document.body.dataset.page") == "deliberations"
    montreuil = next(m for m in net.network.municipalities if m.name == "Montreuil")
    browser.go(f"#/deliberations?commune={montreuil.siret}&q=energie")
    text = browser.text()
    year = datetime.now(UTC).year
    assert f"Montreuil — délibération D{year}-041" in text
    assert "Bagnolet — délibération" not in text  # the town filter applies
    assert "22 pour" in text and "5 contre" in text and "2 abstentions" in text
    tx_id = net.seeded_tx("deliberation", "Montreuil")
    assert browser.evaluate(f"!!document.querySelector('a[href=\"#/verifier?tx={tx_id}\"]')")
    browser.go("#/deliberations?q=rien-de-tel")
    assert "Aucune délibération ne correspond." in browser.text()

    verdict = verify_in_browser(browser, receipt_file, net.genesis_file)
    assert verdict["cls"] == "verdict ok", verdict["text"]
    assert "Reçu vérifié" in verdict["text"]
    assert (f"Délibération D{year}-041 de Montreuil, adoptée par 22 voix pour, 5 contre et "
            "2 abstentions") in verdict["text"]
    assert "certifiée par 3 des 4 validateurs" in verdict["text"]
    genesis_hash = json.loads(receipt_file.read_text())["genesis_hash"]
    assert verdict["genesis"] == genesis_hash
    assert "site officiel de votre mairie" in browser.text()


def test_a_tampered_receipt_is_red_and_names_the_failed_check(
    browser: Browser, net: PortalNetwork, receipt_file: Path, tmp_path: Path
) -> None:
    doc = json.loads(receipt_file.read_text())
    proof = doc["record"]["tx_proof"]
    if proof["path"]:
        proof["path"][0] = ("0" if proof["path"][0][0] != "0" else "1") + proof["path"][0][1:]
    else:
        proof["size"] += 1
    tampered = tmp_path / "recu-modifie.json"
    tampered.write_text(json.dumps(doc))
    verdict = verify_in_browser(browser, tampered, net.genesis_file)
    assert verdict["cls"] == "verdict bad"
    assert "Reçu NON vérifié" in verdict["text"]
    assert verdict["part"] == "record.tx_proof"
    assert "la preuve que l'acte est dans son bloc" in verdict["text"]

    other = json.loads(net.genesis_file.read_text())
    other["chain_id"] = "une-autre-ville"
    wrong_genesis = tmp_path / "autre-genese.json"
    wrong_genesis.write_text(json.dumps(other))
    verdict = verify_in_browser(browser, receipt_file, wrong_genesis)
    assert verdict["cls"] == "verdict bad" and verdict["part"] == "chain_id"


@pytest.fixture(scope="module")
def vector_chain() -> ChainBuilder:
    return build_chain(120)


def receipt_vectors(chain: ChainBuilder) -> list[tuple[str, dict[str, Any]]]:
    """The receipt test vectors of tests/verify/test_receipt.py: a valid receipt after two
    validator-set changes, one before any change, and every tampering of EDITS."""
    def deliberation_after(height: int) -> bytes:
        return next(tx.tx_id for blk in chain.blocks[height:] for tx in blk.block.transactions
                    if tx.contract == "deliberations" and tx.action == "record")

    source = BuilderSource(chain)
    genesis = chain.net.genesis
    valid = json.loads(json.dumps(gather_receipt(
        genesis, source, deliberation_after(chain.validator_changes[1] + 10))))
    early = json.loads(json.dumps(gather_receipt(
        genesis, source, chain.blocks[0].block.transactions[0].tx_id)))
    vectors = [("valid after two changes", valid), ("valid before any change", early)]
    for name, edit, _ in EDITS:
        doc = copy.deepcopy(valid)
        edit(doc)
        vectors.append((name, doc))
    return vectors


def python_verdict(chain: ChainBuilder, doc: dict[str, Any]) -> str:
    try:
        verify_receipt(chain.net.genesis, doc)
    except ReceiptError as exc:
        return exc.part
    return "ok"


def test_every_receipt_vector_gets_the_same_verdict_in_the_browser_as_in_python(
    browser: Browser, net: PortalNetwork, vector_chain: ChainBuilder, tmp_path: Path
) -> None:
    browser.open(net.url + "/#/verifier")
    genesis_file = tmp_path / "genesis.json"
    vector_chain.net.genesis.save(genesis_file)
    vectors = receipt_vectors(vector_chain)
    payload = json.dumps({"genesis": genesis_file.read_text(),
                          "receipts": [json.dumps(doc) for _, doc in vectors]})
    verdicts = browser.evaluate(f"""(async () => {{
        const {{ verdictOf }} = await import('/portal/app.js');
        const {{ parseJsonExact }} = await import('/portal/verify/receipt.js');
        const input = {payload};
        const genesis = parseJsonExact(input.genesis);
        const out = [];
        for (const text of input.receipts) {{
            const v = await verdictOf(parseJsonExact(text), genesis);
            out.push(v.ok ? 'ok' : v.part);
        }}
        return out;
    }})()""")
    expected = [python_verdict(vector_chain, doc) for _, doc in vectors]
    assert expected[:2] == ["ok", "ok"]
    assert all(v != "ok" for v in expected[2:])
    disagreements = [(name, py, js) for (name, _), py, js in zip(vectors, expected, verdicts,
                                                                  strict=True) if py != js]
    assert not disagreements, f"browser and Python disagree: {disagreements}"


def test_a_dropped_document_is_looked_up_by_its_hash(
    browser: Browser, net: PortalNetwork, tmp_path: Path
) -> None:
    year = datetime.now(UTC).year
    document = tmp_path / "arrete-montreuil.txt"
    document.write_bytes(notarised_document("Montreuil", year))
    browser.go("#/documents")
    browser.set_files("#document", document)
    found = browser.wait("document.getElementById('ancrage')?.innerText", what="the lookup")
    assert "Document inscrit au registre" in found
    assert f"arrete ARR-{year}-042" in found and "Inscrit par Montreuil au bloc" in found
    shown = browser.evaluate("document.getElementById('empreinte').innerText")
    assert shown == hashlib.sha256(document.read_bytes()).hexdigest()

    document.write_bytes(notarised_document("Montreuil", year) + b" ")
    browser.go("#/reseau")
    browser.go("#/documents")
    browser.set_files("#document", document)
    missing = browser.wait("document.getElementById('ancrage')?.innerText", what="the lookup")
    assert "Document inconnu du registre" in missing


def test_a_report_shows_its_status_history_with_dates_and_delays(
    browser: Browser, net: PortalNetwork
) -> None:
    montreuil = next(m for m in net.network.municipalities if m.name == "Montreuil")
    browser.go(f"#/signalements?commune={montreuil.siret}&categorie=streetlight")
    history = browser.evaluate(
        "[...document.querySelectorAll('ol.history li')].map(li => li.innerText)")
    assert len(history) == 3, history
    assert history[0].startswith("déposé le ")
    assert history[1].startswith("pris en compte le ") and "après l'étape précédente" in history[1]
    assert history[2].startswith("clos le ")
    assert "service : Voirie" in history[1]
    assert "clos" in browser.evaluate("document.querySelector('.badge').innerText")
    browser.go("#/signalements")
    assert len(browser.evaluate("[...document.querySelectorAll('article.card')]")) == 4


def test_aid_shows_only_aggregates_and_the_network_page_its_validators(
    browser: Browser, net: PortalNetwork
) -> None:
    browser.go("#/aides")
    text = browser.text()
    assert "secret statistique" in text  # 2 payments a town: below the threshold of 11
    assert "150,00" not in text and "125,00" not in text  # no single payment
    browser.go("#/reseau")
    text = browser.text()
    for m in net.network.municipalities:
        assert m.name in text
    assert re.search(r"Réseau tabellion-demo : \d+ blocs inscrits, 4 validateurs", text)


# --------------------------------------------------------------------------- accessibility


def _ax_nodes(browser: Browser) -> list[dict[str, Any]]:
    return list(browser.send("Accessibility.getFullAXTree")["nodes"])


def _prop(node: dict[str, Any], name: str) -> Any:
    return next((p["value"].get("value") for p in node.get("properties", [])
                 if p["name"] == name), None)


CONTRAST_SCRIPT = """(() => {
  const rgb = (c) => (c.match(/[0-9.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const background = (el) => { for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
  const worst = [];
  for (const el of document.querySelectorAll('body *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length) continue;
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) worst.push(`${el.tagName} ${ratio.toFixed(2)} ${el.innerText.slice(0, 40)}`);
  }
  return worst;
})()"""


@pytest.mark.parametrize("route", PAGES)
def test_each_page_has_headings_labels_contrast_and_keyboard_focus(
    browser: Browser, net: PortalNetwork, route: str
) -> None:
    browser.send("Page.navigate", url="about:blank")  # a fresh document: focus at the top
    browser.open(f"{net.url}/#/{route}")
    nodes = _ax_nodes(browser)
    headings = [n for n in nodes if n.get("role", {}).get("value") == "heading"
                and not n.get("ignored")]
    assert [_prop(h, "level") for h in headings].count(1) == 1, "one h1 per page"
    assert all(h.get("name", {}).get("value") for h in headings)
    controls = [n for n in nodes if not n.get("ignored") and n.get("role", {}).get("value") in
                ("textbox", "searchbox", "combobox", "button", "link", "checkbox")]
    unnamed = [n["role"]["value"] for n in controls if not n.get("name", {}).get("value")]
    assert not unnamed, f"controls without an accessible name: {unnamed}"
    assert any(n.get("role", {}).get("value") == "navigation" for n in nodes)
    assert any(n.get("role", {}).get("value") == "main" for n in nodes)
    assert browser.evaluate(CONTRAST_SCRIPT) == []
    # Keyboard: Tab from a fresh page reaches the skip link first, then the menu, and the
    # focused element is visibly outlined.
    browser.key("Tab", "Tab", 9)
    assert browser.evaluate("document.activeElement.className") == "skip"
    browser.key("Tab", "Tab", 9)
    assert browser.evaluate("document.activeElement.getAttribute('href')") == \
        "#/deliberations"
    assert browser.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"


# --------------------------------------------------------------------------- personal data

PERSONAL_DATA = {
    "e-mail": re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),
    "phone": re.compile(r"(?<![\w.])(?:\+33|0)\s?[1-9](?:[\s.-]?\d{2}){4}(?![\w])"),
    "IBAN": re.compile(r"\bFR\d{2}(?:\s?[0-9A-Z]{4}){5}"),
    "NIR": re.compile(
        r"(?<![\w.])[12]\s?\d{2}\s?(?:0[1-9]|1[0-2])\s?\d{2}\s?\d{3}\s?\d{3}\s?\d{2}\b"),
}


def test_no_page_shows_personal_data(browser: Browser, net: PortalNetwork) -> None:
    # The beneficiary tags of the demo's aid payments must never reach a page.
    blocks = [net.read_as_auditor(f"/v1/blocks/{h}") for h in range(1, net.height() + 1)]
    tags = {tx["payload"]["beneficiary"] for b in blocks for tx in b["transactions"]
            if tx["contract"] == "social_aid" and "beneficiary" in tx["payload"]}
    assert tags, "the demo seeds aid payments"
    for route in PAGES:
        browser.go(f"#/{route}")
        html = browser.evaluate("document.documentElement.outerHTML")
        text = browser.text()
        for kind, pattern in PERSONAL_DATA.items():
            assert not pattern.search(text), f"{kind} on #/{route}: {pattern.search(text)}"
        assert not any(tag in html for tag in tags), f"a beneficiary tag on #/{route}"
        assert "Street light out" not in text  # free-text descriptions stay off the portal


def test_no_page_loads_anything_from_outside_the_node(browser: Browser, net: PortalNetwork
                                                      ) -> None:
    browser.events.clear()
    browser.open(net.url + "/")
    for route in PAGES:
        browser.go(f"#/{route}")
    browser.evaluate("1")
    urls = [e["params"]["request"]["url"] for e in browser.events
            if e.get("method") == "Network.requestWillBeSent"]
    assert urls and all(u.startswith(net.url) or u.startswith("data:") for u in urls), urls
