"""Request rate limits: token buckets per client address and per signer.

Rules:
- A bucket holds at most ``burst`` tokens and refills at ``rate_per_s``; a request (or a
  transaction) takes one token. An empty bucket refuses and says how long until the next
  token: the API answers 429 ``rate_limited`` with ``Retry-After`` (whole seconds,
  rounded up, at least 1).
- Per client address: every HTTP request, whatever the route, is charged to the peer
  address of its TCP connection (``X-Forwarded-For`` is not trusted: a client could name
  any address). Behind a reverse proxy every client shares the proxy's address; raise
  the limit there or rate-limit in the proxy.
- Per signer: charged by the mempool for transactions submitted by clients, *after* the
  signature verified, so only the holder of a key can spend its budget (a forger naming
  a clerk's key cannot get the clerk refused). The signature work a client can cause is
  bounded by its request rate times ``api_batch_txs_max``.
- Bounded memory: at most ``tracked_max`` buckets, least recently used first out. An
  evicted bucket comes back full, which only forgets a client that went quiet.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from node.config import Limits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

Clock = Callable[[], float]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_s: float


class TokenBuckets:
    """One token bucket per key (a client address, a signer), bounded in number."""

    def __init__(self, rate_per_s: float, burst: int, tracked_max: int,
                 clock: Clock = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tracked_max = tracked_max
        self._clock = clock
        self._buckets: OrderedDict[object, _Bucket] = OrderedDict()
        self.refused = 0

    def take(self, key: object) -> float:
        """Take one token for ``key``: 0.0 if granted, else the seconds until one is."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[key] = bucket
            while len(self._buckets) > self._tracked_max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst),
                                bucket.tokens + (now - bucket.updated_s) * self.rate_per_s)
            bucket.updated_s = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        self.refused += 1
        return (1.0 - bucket.tokens) / self.rate_per_s

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` in whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_s)))


def signer_buckets(limits: Limits) -> TokenBuckets:
    return TokenBuckets(limits.api_signer_txs_per_s, limits.api_signer_txs_burst,
                        limits.rate_limit_tracked_max)


class ClientRateLimit:
    """ASGI middleware: each HTTP request takes a token of its client address's bucket;
    an empty bucket answers 429 ``rate_limited`` with ``Retry-After``."""

    def __init__(self, app: Asgi, limits: Limits, clock: Clock = time.monotonic) -> None:
        self.app = app
        self.buckets = TokenBuckets(limits.api_client_requests_per_s,
                                    limits.api_client_requests_burst,
                                    limits.rate_limit_tracked_max, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        wait_s = self.buckets.take(address)
        if wait_s == 0.0:
            await self.app(scope, receive, send)
            return
        retry = retry_after_header(wait_s)
        body = json.dumps({"error": {
            "code": "rate_limited",
            "message": f"too many requests from {address}: at most "
                       f"{self.buckets.rate_per_s:g} per second (bursts of "
                       f"{self.buckets.burst}); retry in {retry} s",
        }}).encode()
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", retry.encode()),
        ]})
        await send({"type": "http.response.body", "body": body})
