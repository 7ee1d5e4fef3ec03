"""Open311 GeoReport v2 on a real node, driven by a published client (``georeport``).

One validator process (a one-town network) with ``[open311]`` configured: the intake
front end files reports with the town's API key, the node signs them with the intake
member key, and the ``georeport`` client library reads them back in JSON and XML.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from georeport import GeoReport  # type: ignore[import-untyped]

from ledger.crypto import save_key
from ledger.records import Transaction
from node.config import Open311Config, write_config
from node.open311 import Open311Error, Query, micro_degrees_of
from tests.node.cluster import Cluster

API_KEY = "front-end-key-montreuil-0123456789"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("open311"), n=1)
    node = c.net.nodes[0]
    intake_file = node.directory / "intake.key"
    save_key(node.members["intake"], intake_file, c.net.passphrase.encode())
    settings = Open311Config(node.siret, intake_file,
                             hashlib.sha256(API_KEY.encode()).hexdigest())
    write_config(node.config_path, replace(node.config, open311=settings))
    with c:  # all nodes started and answering; every process killed on exit
        yield c


def _root(c: Cluster) -> str:
    return c.url(0, "/open311/v2")


def _post(c: Cluster, **fields: str) -> httpx.Response:
    form = {"api_key": API_KEY, "service_code": "streetlight",
            "description": "Lampadaire éteint devant l'école", "lat": "48.8615",
            "long": "2.4433", "email": "jeanne@example.org", "first_name": "Jeanne",
            "last_name": "Dupont", "phone": "+33612345678", **fields}
    return c.http.post(_root(c) + "/requests.json", data=form, timeout=60.0)


def test_a_filed_report_reads_back_through_the_client(cluster: Cluster) -> None:
    answer = _post(cluster)
    assert answer.status_code == 201, answer.text
    (filed,) = answer.json()
    request_id = filed["service_request_id"]
    client = GeoReport(_root(cluster), jurisdiction=cluster.net.nodes[0].siret)
    services = client.get_service_list()
    assert "streetlight" in {s["service_code"] for s in services}
    assert client.get_service_definition("streetlight")["attributes"] == []
    found = client.get_service_request(request_id)
    assert found["service_code"] == "streetlight" and found["status"] == "open"
    assert found["lat"] == 48.8615 and found["long"] == 2.4433
    listed = client.get_service_requests(service_code="streetlight", status="open")
    assert request_id in {r["service_request_id"] for r in listed}
    # (another test of this module may have closed a report of its own on the shared network)
    closed = client.get_service_requests(status="closed")
    assert request_id not in {r["service_request_id"] for r in closed}
    assert all(r["status"] == "closed" for r in closed)
    # the contact details were dropped before anything was signed
    tx = cluster.get(0, f"/v1/transactions/{request_id}").json()
    assert tx["status"] == "committed"
    assert tx["transaction"]["signer"] == cluster.net.nodes[0].members["intake"].public_key.hex()
    on_chain = str(tx["transaction"])
    for personal in ("jeanne", "Dupont", "33612345678"):
        assert personal.lower() not in on_chain.lower()


def test_xml_and_status_changes(cluster: Cluster) -> None:
    half = _post(cluster, service_code="pothole", long="")
    assert half.status_code == 400 and "lat and long" in half.json()[0]["description"]
    answer = _post(cluster, service_code="pothole", description="Nid-de-poule",
                   address_string="12 rue de Paris", lat="", long="")
    assert answer.status_code == 201, answer.text
    request_id = answer.json()[0]["service_request_id"]
    node = cluster.net.nodes[0]
    clerk = node.members["clerk"]
    close = Transaction(cluster.net.genesis.chain_id, "reports", "close",
                        {"siret": node.siret, "service_request_id": request_id,
                         "status_notes": "Rebouché"}, clerk.public_key, 1,
                        int(time.time() * 1000) + 600_000).signed(clerk)
    assert cluster.submit(0, [close], wait="true").status_code == 200
    xml_client = GeoReport(_root(cluster), output_format="xml")
    found: dict[str, Any] = xml_client.get_service_request(request_id)
    assert found["status"] == "closed" and found["status_notes"] == "Rebouché"
    services = xml_client.get_service_list()
    assert {"streetlight", "pothole"} <= {s["service_code"] for s in services}


def test_filing_needs_the_key_and_valid_fields(cluster: Cluster) -> None:
    wrong = _post(cluster, api_key="guess")
    assert wrong.status_code == 403
    assert "api_key" in wrong.json()[0]["description"]
    unknown = _post(cluster, service_code="dragons")
    assert unknown.status_code == 400 and "service_code" in unknown.json()[0]["description"]
    far = _post(cluster, lat="91.0")
    assert far.status_code == 400
    other_town = _post(cluster, jurisdiction_id="21940080200016")
    assert other_town.status_code == 400
    bad_range = cluster.http.get(_root(cluster) + "/requests.json",
                                 params={"start_date": "2026-01-01T00:00:00Z",
                                         "end_date": "2026-06-01T00:00:00Z"})
    assert bad_range.status_code == 400 and "90 days" in bad_range.json()[0]["description"]
    missing = cluster.http.get(_root(cluster) + "/requests/" + "ab" * 32 + ".xml")
    assert missing.status_code == 404 and "<errors>" in missing.text


def test_decimal_degrees_become_exact_micro_degrees() -> None:
    assert micro_degrees_of("lat", "48.8615", 90_000_000) == 48_861_500
    assert micro_degrees_of("long", "-0.0000005", 180_000_000) == 0  # half-even
    assert micro_degrees_of("long", "2.44330051", 180_000_000) == 2_443_301
    with pytest.raises(Open311Error):
        micro_degrees_of("lat", "1e3", 90_000_000)


def test_ids_override_the_other_filters() -> None:
    from datetime import UTC, datetime

    query = Query.parse({"service_request_id": "ab" * 32, "status": "closed"},
                        datetime(2026, 1, 1, tzinfo=UTC))
    request = {"service_request_id": "ab" * 32, "status": "open", "service_code": "x",
               "requested_datetime": "2020-01-01T00:00:00Z",
               "x_tabellion_siret": "21930048000015"}
    assert query.matches(request)
    assert not Query.parse({"status": "closed"}, datetime(2026, 1, 1, tzinfo=UTC)
                           ).matches(request)

