"""Small helpers shared by the node tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(condition: Callable[[], bool], timeout_s: float = 60.0,
                what: str = "condition") -> None:
    """Wait until ``condition()`` holds, polling; fail after a generous deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0,
               what: str = "condition", poll_s: float = 0.05) -> None:
    """Blocking form of ``until`` for tests that drive processes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)
