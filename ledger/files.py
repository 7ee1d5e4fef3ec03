"""Reading a file someone handed us (a genesis, a key, a configuration, a receipt...).

Rules:
- A file is read only up to its limit (``bytes_max``, a named limit its caller owns): a
  file larger than the limit is refused before it is read, and no more than
  ``bytes_max + 1`` bytes are ever held, even if the file grows while it is read.
- Every failure is raised as the caller's own error (``error(message)``: each layer has
  its ``LedgerError`` subclass, the CLI its ``CliError``), with one wording for everyone:
  ``<what> <path> does not exist``, ``<path> is larger than N bytes: too large to be a
  <what>``, ``cannot read <what> <path>: <reason>`` (not a regular file, a permission,
  text that is not UTF-8). The caller decides what the content means.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

ErrorFactory = Callable[[str], Exception]
"""Builds the caller's error from a message, e.g. ``GenesisError``."""


def read_bytes_bounded(path: Path, bytes_max: int, what: str, error: ErrorFactory) -> bytes:
    """The content of ``path``, at most ``bytes_max`` bytes; ``error(...)`` raised otherwise.

    ``what`` names the file for the person reading the message, e.g. ``"genesis file"``.
    """
    path = Path(path)
    too_large = f"{path} is larger than {bytes_max} bytes: too large to be a {what}"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a directory, a device: nothing to read whole
            raise error(f"cannot read {what} {path}: it is not a regular file")
        if info.st_size > bytes_max:
            raise error(too_large)
        with path.open("rb") as handle:
            data = handle.read(bytes_max + 1)
    except FileNotFoundError as exc:
        raise error(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    if len(data) > bytes_max:  # it grew between stat and read
        raise error(too_large)
    return data


def read_text_bounded(path: Path, bytes_max: int, what: str, error: ErrorFactory, *,
                      encoding: str = "utf-8") -> str:
    """``read_bytes_bounded`` decoded as ``encoding`` (UTF-8 unless told otherwise)."""
    data = read_bytes_bounded(path, bytes_max, what, error)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {what} {path}: it is not {encoding} text ({exc})") from exc
