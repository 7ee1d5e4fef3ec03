"""System programs some tests drive (Debian's chromium, faketime), required the one way.

Rule: where the program is missing, a test fails in CI (``CI`` set: ``.ci/run`` installs
every such program, so its absence is a broken CI machine, never a pass) and is skipped
elsewhere, with the command that installs it (a developer's machine without a browser
still runs the rest of the suite).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def require_program(name_or_path: str, debian_package: str) -> Path:
    """The program's path; fail in CI, skip elsewhere, when it is not installed."""
    found = shutil.which(name_or_path)
    if found is not None:
        return Path(found)
    message = (f"{name_or_path} is missing: apt-get install -y {debian_package} "
               "(.ci/run does it)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
