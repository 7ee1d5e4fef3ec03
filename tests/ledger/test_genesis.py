"""ledger.genesis: a valid file loads, each broken field is named, and the genesis hash
depends on the content only (never on whitespace or key order)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.encoding import encode
from ledger.errors import GenesisError
from ledger.genesis import Genesis, genesis_from_json, load_genesis
from ledger.hashing import Tag, tagged_hash


def key(i: int) -> str:
    return f"{i:02x}" * 32


def valid_doc() -> dict[str, Any]:
    return {
        "chain_id": "tabellion-test",
        "genesis_time_ms": 1_700_000_000_000,
        "consensus": {
            "checkpoint_interval": 16, "watermark_window": 64, "block_txs_max": 2000,
            "block_bytes_max": 2 * 1024 * 1024, "view_timeout_ms": 2000, "execution_lag": 4,
        },
        "governance": {"approval_numerator": 2, "approval_denominator": 3},
        "municipalities": [
            {"name": "Montreuil", "siret": "21930048000015", "validator_key": key(1),
             "members": [{"key": key(11), "role": "admin"}, {"key": key(12), "role": "clerk"}]},
            {"name": "Saint-Étienne", "siret": "21420218600018", "validator_key": key(2),
             "members": [{"key": key(21), "role": "admin"}]},
            {"name": "Brest", "siret": "21290019700014", "validator_key": key(3),
             "members": [{"key": key(31), "role": "admin"},
                         {"key": key(32), "role": "social_aid_agent"},
                         {"key": key(33), "role": "auditor"}]},
            {"name": "Pau", "siret": "21640445100017", "validator_key": key(4),
             "members": [{"key": key(41), "role": "admin"}]},
        ],
    }


def write(tmp_path: Path, text: str, name: str = "genesis.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_loads(tmp_path: Path) -> None:
    g = load_genesis(write(tmp_path, json.dumps(valid_doc(), ensure_ascii=False)))
    assert g.chain_id == "tabellion-test"
    assert [m.name for m in g.municipalities] == ["Montreuil", "Saint-Étienne", "Brest", "Pau"]
    assert g.consensus.execution_lag == 4
    assert g.validator_set.n == 4 and g.validator_set.quorum == 3
    assert g.validator_set.keys == tuple(bytes.fromhex(key(i)) for i in (1, 2, 3, 4))
    assert g.municipalities[2].members[1].role == "social_aid_agent"
    assert g.genesis_hash == tagged_hash(Tag.GENESIS, encode(g.to_value()))


def test_hash_ignores_whitespace_and_key_order(tmp_path: Path) -> None:
    doc = valid_doc()
    compact = load_genesis(write(tmp_path, json.dumps(doc, separators=(",", ":")), "a.json"))
    indented = load_genesis(write(tmp_path, json.dumps(doc, indent=4, sort_keys=True), "b.json"))

    def reverse_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reverse_keys(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reverse_keys(v) for v in value]
        return value

    escaped = json.dumps(reverse_keys(doc), indent="\t", ensure_ascii=True)  # \u00c9 escapes
    reordered = load_genesis(write(tmp_path, "\n  " + escaped + "\n\n", "c.json"))
    assert compact.genesis_hash == indented.genesis_hash == reordered.genesis_hash
    assert compact == indented == reordered


def test_save_then_load_is_identical(tmp_path: Path) -> None:
    g = genesis_from_json(valid_doc())
    path = tmp_path / "saved.json"
    g.save(path)
    assert load_genesis(path) == g
    assert load_genesis(path).genesis_hash == g.genesis_hash


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("chain_id",), "x"), (("genesis_time_ms",), 1), (("consensus", "execution_lag"), 3),
        (("consensus", "block_txs_max"), 1999), (("governance", "approval_numerator"), 3),
        (("municipalities", 0, "name"), "Montreuil-sous-Bois"),
        (("municipalities", 1, "siret"), "21420218600026"),
        (("municipalities", 0, "validator_key"), key(9)),
        (("municipalities", 3, "members", 0, "key"), key(42)),
        (("municipalities", 0, "members", 1, "role"), "auditor"),
    ],
)
def test_every_value_changes_the_hash(path: tuple[Any, ...], value: Any) -> None:
    doc = valid_doc()
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert genesis_from_json(doc).genesis_hash != genesis_from_json(valid_doc()).genesis_hash


def test_municipality_order_matters_but_validator_set_does_not() -> None:
    doc = valid_doc()
    doc["municipalities"].reverse()
    swapped = genesis_from_json(doc)
    original = genesis_from_json(valid_doc())
    # The document order is content (it is what people see); the validator set is sorted.
    assert swapped.genesis_hash != original.genesis_hash
    assert swapped.validator_set == original.validator_set


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


class _Delete:
    """Marker: remove the field. A stable repr keeps test ids equal across xdist workers."""

    def __repr__(self) -> str:
        return "<deleted>"


_DELETE = _Delete()

BROKEN: list[tuple[tuple[Any, ...], Any, str]] = [
    (("chain_id",), _DELETE, "genesis.chain_id is missing"),
    (("chain_id",), 7, "genesis.chain_id must be a str"),
    (("chain_id",), "Tabellion Test", "chain_id must be 1-64 characters"),
    (("chain_id",), "a" * 65, "chain_id must be 1-64 characters"),
    (("chain_id",), "", "chain_id must be 1-64 characters"),
    (("genesis_time_ms",), "2024-01-01", "genesis.genesis_time_ms must be an integer"),
    (("genesis_time_ms",), True, "genesis.genesis_time_ms must be an integer"),
    (("genesis_time_ms",), 1.5, "genesis.genesis_time_ms must be an integer"),
    (("genesis_time_ms",), -1, "genesis_time_ms must be milliseconds since 1970"),
    (("genesis_time_ms",), 2**64, "genesis_time_ms must be milliseconds since 1970"),
    (("consensus",), _DELETE, "genesis.consensus is missing"),
    (("consensus",), [], "genesis.consensus must be a dict"),
    (("consensus", "checkpoint_interval"), 0, "consensus.checkpoint_interval must be 1..10000"),
    (("consensus", "watermark_window"), 40, "consensus.watermark_window must be a multiple"),
    (("consensus", "watermark_window"), 16, "consensus.watermark_window must be a multiple"),
    (("consensus", "block_txs_max"), 0, "block limits"),
    (("consensus", "block_bytes_max"), 100, "block limits"),
    (("consensus", "view_timeout_ms"), 5, "consensus.view_timeout_ms must be 100..600000"),
    (("consensus", "execution_lag"), 0, "consensus.execution_lag must be 1..checkpoint_interval"),
    (("consensus", "execution_lag"), 17, "consensus.execution_lag must be 1..checkpoint"),
    (("consensus", "execution_lag"), _DELETE, "consensus.execution_lag is missing"),
    (("governance",), _DELETE, "genesis.governance is missing"),
    (("governance", "approval_numerator"), 4, "governance approval must be a fraction"),
    (("governance", "approval_denominator"), 0, "governance approval must be a fraction"),
    (("governance", "approval_denominator"), 2**70, "denominator of at most 1000"),
    (("municipalities",), [], "there must be 1 to 256 municipalities"),
    (("municipalities",), {}, "genesis.municipalities must be a list"),
    (("municipalities", 1), "Saint-Étienne", "municipalities[1] must be an object"),
    (("municipalities", 1, "name"), "", "municipalities[1].name must be 1-64 bytes"),
    (("municipalities", 1, "name"), "é" * 33, "municipalities[1].name must be 1-64 bytes"),
    (("municipalities", 1, "name"), "\ud800", "municipalities[1].name is not valid Unicode"),
    (("municipalities", 1, "members", 0, "role"), "\udfff",
     "municipalities[1].members[0].role is not valid Unicode"),
    (("municipalities", 2, "siret"), "2129001970001", "municipalities[2].siret must be exactly"),
    (("municipalities", 2, "siret"), "2129001970001X", "municipalities[2].siret must be exactly"),
    (("municipalities", 2, "siret"), "21930048000015", "two municipalities share a SIRET"),
    (("municipalities", 3, "validator_key"), key(1), "share a validator key"),
    (("municipalities", 3, "validator_key"), "AB" * 32, "municipalities[3].validator_key must"),
    (("municipalities", 3, "validator_key"), _DELETE, "municipalities[3].validator_key must"),
    (("municipalities", 0, "members"), [{"key": key(12), "role": "clerk"}],
     "municipalities[0] needs at least one admin"),
    (("municipalities", 0, "members", 1), "clerk", "municipalities[0].members[1] must be an"),
    (("municipalities", 0, "members", 1, "role"), "mayor",
     "municipalities[0].members[1].role must be one of"),
    (("municipalities", 0, "members", 1, "key"), key(11)[:-2], "members[1].key must be 64"),
    (("municipalities", 0, "members", 1, "key"), key(21), "a key is enrolled twice"),
    (("municipalities", 0, "members", 1, "key"), key(3), "a key is enrolled twice"),
]


@pytest.mark.parametrize(("path", "value", "message"), BROKEN,
                         ids=[f"{'.'.join(map(str, p))}={v!r}"[:60] for p, v, _ in BROKEN])
def test_broken_field_is_named(tmp_path: Path, path: tuple[Any, ...], value: Any,
                               message: str) -> None:
    doc = copy.deepcopy(valid_doc())
    _set(doc, path, value)
    with pytest.raises(GenesisError, match=message.replace("[", r"\[").replace("]", r"\]")
                       .replace(".", r"\.")):
        load_genesis(write(tmp_path, json.dumps(doc)))


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(GenesisError, match="does not exist"):
        load_genesis(tmp_path / "nowhere.json")
    with pytest.raises(GenesisError, match="is not valid JSON"):
        load_genesis(write(tmp_path, '{"chain_id": "x",'))
    with pytest.raises(GenesisError, match="must hold a JSON object"):
        load_genesis(write(tmp_path, "[1, 2]"))
    bad_utf8 = tmp_path / "latin1.json"
    bad_utf8.write_bytes(json.dumps(valid_doc()).replace("Saint-\\u00c9tienne", "Saint-\xc9tienne")
                         .encode("latin-1"))
    with pytest.raises(GenesisError, match="cannot read genesis file"):
        load_genesis(bad_utf8)
    with pytest.raises(GenesisError, match="cannot read genesis file"):
        load_genesis(tmp_path)  # a directory


def test_to_json_is_the_file_format() -> None:
    g = genesis_from_json(valid_doc())
    assert g.to_json() == valid_doc()
    assert isinstance(g, Genesis)
