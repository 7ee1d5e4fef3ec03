"""docs/contracts.md documents every action, field and rejection code of the contracts."""

from __future__ import annotations

import re
from pathlib import Path

from contracts.engine import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
FRAMEWORK_CODES = {"already_committed"}


def test_every_action_and_field_is_documented() -> None:
    missing = [
        f"{c.name}.{a.name}.{f.name}"
        for c in REGISTRY.contracts for a in c.actions for f in a.fields
        if f"`{f.name}`" not in DOC.split(f"### `{c.name}.{a.name}`")[-1].split("###")[0]
    ]
    assert not missing, f"fields missing from docs/contracts.md: {missing}"


def test_every_rejection_code_is_documented() -> None:
    codes = set(FRAMEWORK_CODES)
    for path in sorted((ROOT / "contracts").glob("*.py")):
        codes |= set(re.findall(r'reject\(\s*"([a-z_]+)"', path.read_text(encoding="utf-8")))
    assert len(codes) > 30, "the scan finds the codes"
    undocumented = sorted(code for code in codes if f"`{code}`" not in DOC)
    assert not undocumented, f"codes missing from docs/contracts.md: {undocumented}"
