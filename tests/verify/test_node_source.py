"""``audit --node`` and ``receipt get --node`` against nodes that lie or misbehave.

A node is an untrusted source: the height it reports, the size of its answers and its
very presence must not make the auditor walk forever, hold unbounded memory, or exit
with a code the documentation does not give. The nodes here are small HTTP servers on
127.0.0.1 (real sockets, port 0) that serve a real chain and lie about one thing."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import cli.audit
from cli.main import app
from ledger.jsonview import committed_block_to_json
from testkit.chainbuilder import BuilderSource, ChainBuilder
from testkit.populate import build_chain
from verify.receipt import RECEIPT_FILE_BYTES_MAX, ReceiptError, fetch_receipt
from verify.sources import NODE_FINDINGS_MAX, NODE_HEAD_HEIGHT_MAX

BLOCKS = 30
LYING_HEAD = 10**12
"""A head no walk could reach: the audit must not try."""
ANSWER_DEADLINE_S = 60.0


@dataclass
class FakeNode:
    """What the served node answers: a real chain up to ``served``, a head it reports, and
    optionally a receipt answer of ``receipt_bytes`` bytes sent in pieces."""

    chain: ChainBuilder
    reported_head: int
    served: int
    hole: int | None = None
    receipt_bytes: int = 0
    repeat_last: bool = False
    """Above ``served``, answer the last real block again (a node serving junk forever)."""
    drop_blocks: bool = False
    """Close the connection instead of answering a block (the node died mid-walk)."""
    announce_length: bool = True
    block_requests: list[int] = field(default_factory=list)
    receipt_bytes_sent: int = 0


def _handler(node: FakeNode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet test output
            pass

        def _json(self, status: int, doc: Any) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/v1/status":
                self._json(200, {"height": node.reported_head,
                                 "genesis_hash": node.chain.net.genesis.genesis_hash.hex()})
            elif path.startswith("/v1/blocks/"):
                height = int(path.rsplit("/", 1)[1])
                node.block_requests.append(height)
                if node.drop_blocks:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                elif node.repeat_last and height > node.served:
                    self._json(200, committed_block_to_json(node.chain.blocks[node.served - 1]))
                elif height > node.served or height == node.hole:
                    self._json(404, {"error": {"code": "unknown_block",
                                               "message": "no committed block"}})
                else:
                    self._json(200, committed_block_to_json(node.chain.blocks[height - 1]))
            elif path.startswith("/v1/state/"):
                version = int(self.path.rsplit("height=", 1)[1])
                value, proof = BuilderSource(node.chain).validators_at(version)
                self._json(200, {"value": None if value is None else value.hex(),
                                 "proof": proof.hex()})
            elif path.startswith("/v1/receipts/"):
                self._send_huge_receipt()
            else:
                self._json(404, {"error": {"code": "not_found", "message": path}})

        def _send_huge_receipt(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if node.announce_length:
                self.send_header("Content-Length", str(node.receipt_bytes))
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            piece = b" " * 65536
            try:
                while node.receipt_bytes_sent < node.receipt_bytes:
                    self.wfile.write(piece)
                    node.receipt_bytes_sent += len(piece)
            except OSError:
                pass  # the client stopped reading: what the test wants

    return Handler


@pytest.fixture(scope="module")
def chain() -> ChainBuilder:
    return build_chain(BLOCKS)


@pytest.fixture(scope="module")
def genesis(chain: ChainBuilder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("genesis") / "genesis.json"
    chain.net.genesis.save(path)
    return path


@dataclass
class Served:
    node: FakeNode
    url: str


@pytest.fixture
def serve(chain: ChainBuilder) -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(**options: Any) -> Served:
        node = FakeNode(chain, **options)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(node))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return Served(node, f"http://127.0.0.1:{server.server_address[1]}")

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def audit_node(url: str, genesis: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "--node", url, "--genesis", str(genesis),
                                      "--no-progress", "--workers", "1"])
    return result.exit_code, result.stdout + result.stderr


def test_an_honest_node_is_audited_to_its_head(serve: Any, genesis: Path) -> None:
    served = serve(reported_head=BLOCKS, served=BLOCKS)
    code, out = audit_node(served.url, genesis)
    assert code == 0, out
    assert f"blocks: {BLOCKS:,}" in out


def test_a_head_no_block_backs_is_refused_without_walking(serve: Any, genesis: Path) -> None:
    served = serve(reported_head=NODE_HEAD_HEIGHT_MAX, served=BLOCKS)
    code, out = audit_node(served.url, genesis)
    assert code == 2, out
    assert f"{NODE_HEAD_HEIGHT_MAX:,}" in out and "serves no block there" in out
    assert len(served.node.block_requests) <= 1


def test_a_head_beyond_the_hard_limit_is_refused(serve: Any, genesis: Path) -> None:
    served = serve(reported_head=LYING_HEAD, served=BLOCKS)
    code, out = audit_node(served.url, genesis)
    assert code == 2, out
    assert f"{LYING_HEAD:,}" in out
    assert served.node.block_requests == []


def test_a_hole_below_the_head_ends_the_walk_with_a_finding(
    serve: Any, genesis: Path
) -> None:
    # The node backs its head with a block, but the range below it is mostly missing: the
    # audit reports the first missing height and reads nothing after it.
    served = serve(reported_head=BLOCKS, served=BLOCKS, hole=12)
    code, out = audit_node(served.url, genesis)
    assert code == 1, out
    assert "height 12" in out and "the audit stops here" in out
    assert max(h for h in served.node.block_requests if h != BLOCKS) == 12


def test_a_node_serving_junk_up_to_its_head_is_given_up_on(
    serve: Any, genesis: Path
) -> None:
    # Every height answers (the same block again), so nothing stops the walk but a bound
    # on what the audit reads from a node that keeps failing the checks.
    served = serve(reported_head=NODE_HEAD_HEIGHT_MAX, served=BLOCKS, repeat_last=True)
    code, out = audit_node(served.url, genesis)
    assert code == 1, out
    assert f"after {NODE_FINDINGS_MAX:,} findings" in out
    assert len(served.node.block_requests) <= BLOCKS + 2 * NODE_FINDINGS_MAX


def test_a_node_that_does_not_answer_exits_2_as_documented(genesis: Path) -> None:
    with socket.socket() as sock:  # a port that was just free: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out = audit_node(f"http://127.0.0.1:{port}", genesis)
    assert code == 2, out
    assert "cannot" in out and f"127.0.0.1:{port}" in out
    operators = (Path(__file__).resolve().parents[2] / "docs" / "operators.md").read_text()
    assert "`tabellion audit` has its own codes: 0 no finding, 1 integrity findings, " \
        "2 could not run" in operators


def test_a_node_that_dies_during_the_walk_exits_2(serve: Any, genesis: Path) -> None:
    served = serve(reported_head=BLOCKS, served=BLOCKS, drop_blocks=True)
    code, out = audit_node(served.url, genesis)
    assert code == 2, out
    assert "cannot" in out and "/v1/blocks/" in out


def test_a_url_that_is_not_one_exits_2_naming_it(genesis: Path) -> None:
    code, out = audit_node("http://[::1", genesis)
    assert code == 2, out
    assert "http://[::1" in out and "bug" not in out


def test_a_raw_connection_error_exits_2_not_3(
    genesis: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever layer lets an HTTP error through, the audit's documented code is 2 (the
    # other commands' 3 means "unreachable" there, and audit gives 1 and 3 no such sense).
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    monkeypatch.setattr(cli.audit, "open_source", unreachable)
    code, out = audit_node("http://127.0.0.1:9", genesis)
    assert code == 2, out
    assert "Connection refused" in out


@pytest.mark.parametrize("announce_length", [True, False])
def test_an_oversized_receipt_is_refused_while_it_streams(
    serve: Any, announce_length: bool
) -> None:
    # 64 times the limit: read whole, it would take the auditor's memory first.
    total = 64 * RECEIPT_FILE_BYTES_MAX
    served = serve(reported_head=BLOCKS, served=BLOCKS, receipt_bytes=total,
                   announce_length=announce_length)
    with pytest.raises(ReceiptError, match=f"more than {RECEIPT_FILE_BYTES_MAX:,} bytes"):
        fetch_receipt(served.url, b"\x01" * 32)
    assert served.node.receipt_bytes_sent < total // 2
