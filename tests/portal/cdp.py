"""A headless Chromium driven over the Chrome DevTools Protocol, for the portal tests.

Rules:
- The browser is Debian's ``chromium`` (``CHROMIUM`` or /usr/bin/chromium), started with
  a fresh profile in a temporary directory, no network features of its own (no sync,
  no component updates, no QUIC) and ``--remote-debugging-port=0``: the OS picks the
  port and Chromium prints the websocket address on stderr.
- The websocket client is the small subset of RFC 6455 that CDP needs (text frames,
  client masking, 16/64-bit lengths, continuation frames, ping); no dependency.
- Every wait has a deadline; ``close`` kills the browser's whole process group.
- A missing browser is a failure when ``CI`` is set (CI installs it), a skip otherwise.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from testkit.system import require_program

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 30.0
FRAME_BYTES_MAX = 64 * 1024 * 1024
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--remote-debugging-port=0", "--remote-allow-origins=*")


def require_chromium() -> Path:
    """The browser binary, required the testkit way (fails in CI if absent)."""
    return require_program(str(CHROMIUM), "chromium")


class CdpError(RuntimeError):
    """The browser answered a command with an error, or did not answer in time."""


class WebSocket:
    """A blocking RFC 6455 client over one TCP connection."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {parsed.path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise CdpError("the browser closed the websocket during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise CdpError(f"websocket handshake refused: {head[:200]!r}")
        self.buffer = head.split(b"\r\n\r\n", 1)[1]

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise CdpError("the browser closed the websocket")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def receive(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8))
            if length > FRAME_BYTES_MAX:
                raise CdpError(f"a frame of {length} bytes exceeds {FRAME_BYTES_MAX}")
            payload = self._read(length)
            if opcode == 0x9:  # ping: answer, keep reading
                self.sock.sendall(struct.pack("!BB", 0x8A, 0x80 | len(payload)) +
                                  b"\0\0\0\0" + payload)
                continue
            if opcode == 0x8:
                raise CdpError("the browser closed the websocket")
            message += payload
            if first & 0x80:
                return message.decode()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


WAIT_S = 60.0
"""How long a page may take to render: generous, a loaded 2-core CI machine runs the
browser beside four nodes and other tests (20 s was once not enough there)."""


class Browser:
    """One Chromium process and one page target, driven by CDP commands."""

    def __init__(self, width: int = 1280, height: int = 900) -> None:
        binary = require_chromium()
        self.profile = Path(tempfile.mkdtemp(prefix="tabellion-chromium-"))
        self.proc = subprocess.Popen(
            [str(binary), *FLAGS, f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        try:
            browser_ws = self._devtools_url()
            self.ws = WebSocket(browser_ws, START_TIMEOUT_S)
            self._next_id = 0
            self.events: list[dict[str, Any]] = []
            target = self.command("Target.createTarget", url="about:blank")["targetId"]
            session = self.command("Target.attachToTarget", targetId=target, flatten=True)
            self.session = session["sessionId"]
            for domain in ("Page", "Runtime", "DOM", "Accessibility", "Network"):
                self.send(f"{domain}.enable")
            # A headless tab is never "focused": emulate it so Tab moves the focus.
            self.send("Emulation.setFocusEmulationEnabled", enabled=True)
        except BaseException:
            self.close()
            raise

    def _devtools_url(self) -> str:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            seen.append(line)
            if line.startswith("DevTools listening on "):
                return line.split(" on ", 1)[1].strip()
        raise CdpError("chromium did not start:\n" + "".join(seen[-20:]))

    # ------------------------------------------------------------------ protocol
    def command(self, method: str, session: str | None = None, **params: Any) -> Any:
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        self.ws.sock.settimeout(COMMAND_TIMEOUT_S)
        while True:
            reply = json.loads(self.ws.receive())
            if reply.get("id") == ident:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
            del self.events[:-1000]  # keep memory bounded

    def send(self, method: str, **params: Any) -> Any:
        """A command to the page (this browser's one tab)."""
        return self.command(method, self.session, **params)

    # ------------------------------------------------------------------ page helpers
    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (promises awaited); return its JSON value."""
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True, timeout=COMMAND_TIMEOUT_S * 1000)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"JavaScript failed: {text}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout_s: float = WAIT_S, what: str = "") -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or expression}")
            time.sleep(0.05)

    def open(self, url: str) -> None:
        """Navigate and wait until the portal page has rendered."""
        self.send("Page.navigate", url=url)
        self.wait_page()

    def wait_page(self) -> None:
        self.wait("document.readyState === 'complete' && document.body "
                  "&& document.body.dataset.ready === 'true'", what="the page to render")

    def go(self, hash_route: str) -> None:
        """Follow an in-page route (``#/...``) and wait until it has rendered."""
        if not self.evaluate("typeof document.body?.dataset.page === 'string'"):
            # Without this, a route on a page that is not the portal (about:blank in a
            # fresh browser) waits the whole render timeout for nothing.
            raise CdpError(f"cannot follow {hash_route}: the portal is not open in the "
                           "browser; call open() first")
        self.evaluate(f"""document.body.dataset.ready = 'false';
            if (location.hash === {json.dumps(hash_route)})
                window.dispatchEvent(new HashChangeEvent('hashchange'));
            else location.hash = {json.dumps(hash_route)};
            true""")
        self.wait_page()

    def text(self) -> str:
        return str(self.evaluate("document.body.innerText"))

    def set_files(self, selector: str, *paths: Path) -> None:
        document = self.send("DOM.getDocument", depth=0)
        node = self.send("DOM.querySelector", nodeId=document["root"]["nodeId"],
                         selector=selector)
        self.send("DOM.setFileInputFiles", nodeId=node["nodeId"],
                  files=[str(p) for p in paths])

    def viewport(self, width: int, height: int, mobile: bool) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=mobile)

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(data["data"]))

    def key(self, key: str, code: str, key_code: int, shift: bool = False) -> None:
        modifiers = 8 if shift else 0
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=code,
                      windowsVirtualKeyCode=key_code, nativeVirtualKeyCode=key_code,
                      modifiers=modifiers)

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)
