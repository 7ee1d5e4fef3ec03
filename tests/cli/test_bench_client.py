"""cli.bench_client and the bench's latency phase, against real servers on 127.0.0.1.

uvicorn serves the well-behaved answers (the server the nodes run); a raw asyncio server
sends the malformed ones a real server would not."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgpack
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cli.bench import LATENCY_BATCH, SubmitterPlan, _paced
from cli.bench_client import BODY_BYTES_MAX, KeepAlive, ProtocolError

MSGPACK = "application/msgpack"


class _Server(uvicorn.Server):
    """uvicorn without signal handlers (the test owns the process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def _uvicorn(app: FastAPI, keep_alive_s: int = 5) -> AsyncIterator[str]:
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                    lifespan="off", timeout_keep_alive=keep_alive_s))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def _echo_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/transactions")
    async def post(request: Request) -> JSONResponse:
        body = msgpack.unpackb(await request.body())
        wait = request.query_params.get("wait")
        return JSONResponse({"committed": wait == "true", "count": len(body)},
                            status_code=200 if len(body) < 3 else 202)

    return app


def test_answers_come_back_over_one_kept_alive_connection() -> None:
    async def scenario() -> tuple[list[tuple[int, Any]], int]:
        async with _uvicorn(_echo_app()) as url:
            client = KeepAlive(url)
            answers = []
            for count in (1, 2, 3):
                answer = await client.post("/v1/transactions?wait=true",
                                           msgpack.packb([b"x"] * count), MSGPACK, 5.0)
                answers.append((answer.status, json.loads(answer.body)))
            await client.close()
            return answers, client.opened

    answers, opened = asyncio.run(scenario())
    assert answers == [(200, {"committed": True, "count": 1}),
                       (200, {"committed": True, "count": 2}),
                       (202, {"committed": True, "count": 3})]
    assert opened == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_not_written_to() -> None:
    async def scenario() -> tuple[int, int]:
        async with _uvicorn(_echo_app(), keep_alive_s=1) as url:
            client = KeepAlive(url)
            await client.post("/v1/transactions", msgpack.packb([b"x"]), MSGPACK, 5.0)
            await asyncio.sleep(1.6)  # uvicorn closes the idle connection meanwhile
            answer = await client.post("/v1/transactions", msgpack.packb([b"x"]), MSGPACK, 5.0)
            await client.close()
            return answer.status, client.opened

    assert asyncio.run(scenario()) == (200, 2)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def _raw(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)


def _answering(raw_answer: bytes) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                await _read_request(reader)
                writer.write(raw_answer)
                await writer.drain()
    return handler


@pytest.mark.parametrize(("raw_answer", "reason"), [
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
     "transfer-encoding"),
    (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{}", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (BODY_BYTES_MAX + 1), "over"),
    (b"SMTP ready\r\n\r\n", "status line"),
    (b"HTTP/1.1 200 OK\r\nx-filler: " + b"a" * 20_000 + b"\r\n\r\n", "head longer"),
])
def test_an_answer_it_cannot_read_safely_is_a_protocol_error_and_the_connection_is_dropped(
        raw_answer: bytes, reason: str) -> None:
    async def scenario() -> tuple[str, int]:
        async with _raw(_answering(raw_answer)) as url:
            client = KeepAlive(url)
            with pytest.raises(ProtocolError) as first:
                await client.post("/", b"{}", "application/json", 5.0)
            with pytest.raises(ProtocolError):
                await client.post("/", b"{}", "application/json", 5.0)
            await client.close()
            return str(first.value), client.opened

    message, opened = asyncio.run(scenario())
    assert reason in message
    assert opened == 2  # the failed connection was not reused


def test_a_server_that_never_answers_times_out_within_the_time_given() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await _read_request(reader)
            await reader.read()  # until the client gives up and closes

    async def scenario() -> float:
        async with _raw(silent) as url:
            client = KeepAlive(url)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TimeoutError):
                await client.post("/", b"{}", "application/json", 0.3)
            return loop.time() - started

    assert 0.3 <= asyncio.run(scenario()) < 2.0


def test_the_latency_phase_counts_committed_answers_as_samples_and_the_rest_by_kind() -> None:
    """``_paced`` over the same client: a batch answered 200 and committed is a sample;
    a batch answered 202 is counted as such, and a node that refuses connections too."""
    async def serve_and_pace() -> tuple[list[float], dict[str, int], int]:
        async with _uvicorn(_echo_app()) as url:
            plan = SubmitterPlan(chain_id="c", urls=(url, "http://127.0.0.1:9"), agents=(),
                                 count=0, batch=LATENCY_BATCH, clients=1, period="2026-01")
            # Batches of 1 and 2 transactions (200, committed), of 3 (202), and two
            # for the node that listens nowhere (connection refused).
            batches = [(0, [b"a"]), (0, [b"a", b"b"]), (0, [b"a", b"b", b"c"]),
                       (1, [b"a"]), (1, [b"b"])]
            return await asyncio.to_thread(_paced, plan, batches, 0, 100.0, 5.0)

    latencies, failures, cursor = asyncio.run(serve_and_pace())
    assert len(latencies) == 2 and all(0 < ms < 5_000 for ms in latencies)
    assert failures == {"HTTP 202": 1, "ConnectionRefusedError": 2}
    assert cursor == 5
