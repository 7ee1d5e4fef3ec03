"""The dependency arrows of docs/architecture.md §1, enforced on the source text.

    cli -> node -> consensus -> ledger
               \\-> contracts -> ledger
    cli, node -> verify -> contracts, ledger
    testkit -> node, verify, consensus, contracts, ledger     (what tests and bench share)
    bench -> cli, testkit and below;  tests -> everything

A package may import only the packages it points to (and the standard library and
third-party libraries allowed for it). bench/ never imports tests/: what both need is in
testkit/.

Every Python package at the top of the repository is one of ``PACKAGES`` and has its
arrows in ``ALLOWED`` (a new package cannot slip past these rules), and the tests mirror
the packages: each file under tests/ lives in ``tests/<package>/`` or in one of the
cross-cutting folders of docs/architecture.md §6 (``CROSS_CUTTING_TEST_FOLDERS``), so the
tests of a module are found where its package's name says.
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
# Test folders that do not belong to one package (docs/architecture.md §6): the fault
# campaign over real nodes, the portal driven in a browser over the demo network, and the
# byte-level vectors shared by the ledger and contract tests.
CROSS_CUTTING_TEST_FOLDERS = ("faults", "portal", "vectors")
# The files of tests/ itself: the suite's settings, and this test, which covers every package.
TEST_ROOT_FILES = ("__init__.py", "conftest.py", "test_architecture.py")


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


def _top_level_packages(root: Path) -> set[str]:
    """Every folder at the top of ``root`` that holds Python code."""
    return {path.relative_to(root).parts[0]
            for path in root.glob("*/**/*.py")
            if not path.relative_to(root).parts[0].startswith(".")}


def _misplaced_test_files(tests_root: Path, packages: tuple[str, ...]) -> list[str]:
    """The files under ``tests_root`` that are neither in the folder of a package nor in
    a cross-cutting folder nor one of the suite's own root files."""
    homes = {package for package in packages if package != "tests"}
    homes.update(CROSS_CUTTING_TEST_FOLDERS)
    misplaced = []
    for path in sorted(tests_root.rglob("*.py")):
        parts = path.relative_to(tests_root).parts
        if (len(parts) == 1 and parts[0] not in TEST_ROOT_FILES) or (
                len(parts) > 1 and parts[0] not in homes):
            misplaced.append(str(path.relative_to(tests_root)))
    return misplaced


def test_every_package_is_covered_by_the_rules() -> None:
    packages = _top_level_packages(ROOT)
    assert packages == set(PACKAGES), (
        f"packages without arrows: {sorted(packages - set(PACKAGES))}; "
        f"listed but gone: {sorted(set(PACKAGES) - packages)}")
    assert set(ALLOWED) == set(PACKAGES)
    assert set(FORBIDDEN_LIBS) <= set(PACKAGES)


def test_every_test_file_lives_under_the_folder_of_its_package() -> None:
    misplaced = _misplaced_test_files(ROOT / "tests", PACKAGES)
    assert not misplaced, (
        "test files outside tests/<package>/ (move them to the folder of the package they "
        "test, or document a cross-cutting folder in docs/architecture.md §6):\n"
        + "\n".join(misplaced))


def test_the_layout_checks_see_a_stray_file_and_an_unlisted_package(tmp_path: Path) -> None:
    for relative in ("tests/conftest.py", "tests/ledger/test_kv.py", "tests/vectors/gen.py",
                     "tests/test_kv.py", "tests/audit/test_core.py", "ledger/kv.py",
                     "newpkg/__init__.py", ".venv/lib/x.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("")
    assert _misplaced_test_files(tmp_path / "tests", PACKAGES) == ["audit/test_core.py",
                                                                   "test_kv.py"]
    assert _top_level_packages(tmp_path) == {"tests", "ledger", "newpkg"}


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom contracts import registry\n")
    assert _imports(bad) == {"asyncio", "contracts"}
