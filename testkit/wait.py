"""Waiting on a condition, the one way tests and benchmarks do it.

Rules: poll a condition with a generous deadline (busy 2-core machines), never sleep a
fixed time and then assert; a timeout fails with an ``AssertionError`` naming what was
awaited.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

POLL_S = 0.05
ASYNC_POLL_S = 0.01
LOG_POLL_S = 0.2


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str,
             poll_s: float = POLL_S) -> Any:
    """Poll ``condition`` until it returns a truthy value, and return that value; fail
    with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


async def until(condition: Callable[[], bool], timeout_s: float = 60.0,
                what: str = "condition") -> None:
    """``wait_for`` inside an event loop: the loop keeps running while it waits."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(ASYNC_POLL_S)


def wait_for_line(process: subprocess.Popen[Any], log: Path, line: str,
                  timeout_s: float) -> str:
    """Wait until ``line`` appears in ``log``, the output of ``process``; fail at once,
    with the log, if the process exits first, and with the log after ``timeout_s``.
    Returns the log's text."""

    def seen() -> str | None:
        text = log.read_text(errors="replace")
        if line in text:
            return text
        assert process.poll() is None, f"exited before printing {line!r}:\n{text}"
        return None

    try:
        text: str = wait_for(seen, timeout_s, f"{line!r} in {log}", LOG_POLL_S)
    except AssertionError as exc:
        if "timed out" not in str(exc):
            raise
        raise AssertionError(f"{exc}:\n{log.read_text(errors='replace')}") from None
    return text
