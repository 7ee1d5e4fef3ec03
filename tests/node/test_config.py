"""NodeConfig: round trip through TOML, and errors that name the file and the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.errors import LedgerError
from node.config import Limits, NodeConfig, PeerConfig, load_config, write_config
from node.errors import ConfigError


def _cfg(tmp_path: Path) -> NodeConfig:
    return NodeConfig(
        data_dir=tmp_path / "data",
        key_file=tmp_path / "validator.key",
        passphrase_env="TABELLION_PASSPHRASE",
        genesis_file=tmp_path / "genesis.json",
        listen_peer="127.0.0.1:7001",
        listen_api="127.0.0.1:8001",
        peers=(PeerConfig(bytes(range(32)), "127.0.0.1:7002"),),
        limits=Limits(mempool_txs_max=123),
        log_level="debug",
    )


def test_write_then_load_gives_the_same_configuration(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    write_config(tmp_path / "node.toml", cfg)
    text = (tmp_path / "node.toml").read_text()
    assert 'data_dir = "data"' in text  # relative: the directory can move
    loaded = load_config(tmp_path / "node.toml")
    assert loaded.data_dir == (tmp_path / "data").resolve()
    assert loaded.peers == cfg.peers
    assert loaded.limits.mempool_txs_max == 123
    assert loaded.limits.frame_bytes_max == Limits().frame_bytes_max
    assert loaded.log_level == "debug"


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda t: t.replace('listen_peer = "127.0.0.1:7001"', 'listen_peer = "nope"'),
         "listen_peer"),
        (lambda t: t.replace('passphrase_env = "TABELLION_PASSPHRASE"\n', ""), "passphrase_env"),
        (lambda t: t.replace("mempool_txs_max = 123", "frame_bytes_max = -1"), "frame_bytes_max"),
        (lambda t: t.replace("mempool_txs_max = 123", "send_queue_size = 3"), "send_queue_size"),
        (lambda t: t.replace('log_level = "debug"', 'log_level = "loud"'), "log_level"),
        (lambda t: t.replace(bytes(range(32)).hex(), "zz"), "validator_key"),
        (lambda t: t + "\nsurprise = 1\n", "surprise"),
        (lambda t: t + "\n[[[broken", "TOML"),
    ],
)
def test_a_bad_field_is_named_with_the_file(
    tmp_path: Path, edit: Callable[[str], str], field: str
) -> None:
    path = tmp_path / "node.toml"
    write_config(path, _cfg(tmp_path))
    path.write_text(edit(path.read_text()))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert field in str(info.value)
    assert isinstance(info.value, LedgerError)


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")
