"""The dependency arrows of docs/architecture.md §1, enforced on the source text.

    cli -> node -> consensus -> ledger
               \\-> contracts -> ledger
    cli, node -> verify -> contracts, ledger
    testkit -> node, verify, consensus, contracts, ledger     (what tests and bench share)
    bench -> cli, testkit and below;  tests -> everything

A package may import only the packages it points to (and the standard library and
third-party libraries allowed for it). bench/ never imports tests/: what both need is in
testkit/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ledger", "consensus", "contracts", "node", "cli", "verify", "testkit", "bench",
            "tests")
ALLOWED = {
    "ledger": set(),
    "consensus": {"ledger"},
    "contracts": {"ledger"},
    "node": {"ledger", "consensus", "contracts", "verify"},
    "cli": {"ledger", "consensus", "contracts", "node", "bench", "verify"},
    "verify": {"ledger", "contracts"},
    "testkit": {"ledger", "consensus", "contracts", "node", "verify"},
    "bench": {"ledger", "consensus", "contracts", "node", "cli", "verify", "testkit"},
    "tests": {"ledger", "consensus", "contracts", "node", "cli", "verify", "testkit", "bench"},
}
# Libraries whose presence would break a layer's rule (I/O, clock, randomness).
FORBIDDEN_LIBS = {
    "ledger": {"asyncio", "fastapi", "uvicorn", "httpx", "socket"},
    "consensus": {"asyncio", "socket", "plyvel", "random", "time", "fastapi", "httpx"},
    "contracts": {"asyncio", "socket", "plyvel", "random", "time", "datetime_now"},
}
PLYVEL_OWNERS = {"ledger/store.py", "ledger/state_store.py", "ledger/kv.py"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_it_points_to(package: str) -> None:
    offenders = []
    for path in _files(package):
        for name in _imports(path):
            if name in PACKAGES and name != package and name not in ALLOWED[package]:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
            if name in FORBIDDEN_LIBS.get(package, set()):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "dependency arrows broken:\n" + "\n".join(offenders)


def test_only_the_store_modules_import_plyvel() -> None:
    users = {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in _files(package)
        if "plyvel" in _imports(path)
    }
    assert users <= PLYVEL_OWNERS, f"plyvel imported outside the store: {users - PLYVEL_OWNERS}"


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom contracts import registry\n")
    assert _imports(bad) == {"asyncio", "contracts"}
