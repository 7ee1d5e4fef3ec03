"""Screenshots of every portal page at phone and desktop widths, for a reviewer.

Usage: ``.venv/bin/python -m tests.portal.screenshots --out DIR``

Starts the demo network (tests/portal/network.py), verifies one receipt and looks up one
notarised document so those pages show a result, and writes ``DIR/<page>-<device>.png``
(full-page captures). Uses the same headless Chromium as the tests.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from tests.portal.cdp import Browser
from tests.portal.network import PortalNetwork, notarised_document, portal_network

DEVICES = {"telephone": (390, 844, True), "bureau": (1280, 900, False)}
PAGES = ("deliberations", "signalements", "aides", "documents", "verifier", "reseau")


def capture(net: PortalNetwork, browser: Browser, out: Path, work: Path) -> list[Path]:
    """Write one screenshot per page and device into ``out``; return the files."""
    tx_id = net.seeded_tx("deliberation", "Montreuil")
    height = int(next(r["height"] for r in net.seeded if r["tx_id"] == tx_id))
    lag = json.loads(net.genesis_file.read_text())["consensus"]["execution_lag"]
    net.advance(max(0, height + lag - net.height()))
    receipt = net.receipt(tx_id, work / "recu.json")
    document = work / "arrete.txt"
    document.write_bytes(notarised_document("Montreuil", datetime.now(UTC).year))
    written = []
    for device, (width, height_px, mobile) in DEVICES.items():
        browser.viewport(width, height_px, mobile)
        browser.open(net.url + "/")
        for page in PAGES:
            browser.go(f"#/{page}")
            if page == "documents":
                browser.set_files("#document", document)
                browser.wait("!!document.getElementById('ancrage')", what="the lookup")
            if page == "verifier":
                browser.set_files("#fichier-recu", receipt)
                browser.set_files("#fichier-genese", net.genesis_file)
                browser.evaluate("document.getElementById('verifier').click(); true")
                browser.wait("!!document.getElementById('verdict')", what="the verdict")
            path = out / f"{page}-{device}.png"
            browser.screenshot(path)
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tabellion-screens-") as tmp:
        work = Path(tmp)
        with portal_network(work / "demo") as net:
            browser = Browser()
            try:
                files = capture(net, browser, args.out, work)
            finally:
                browser.close()
    for path in files:
        print(path)


if __name__ == "__main__":
    main()
