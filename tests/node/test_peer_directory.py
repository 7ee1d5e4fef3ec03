"""node.membership: whom a node admits and dials follows the on-chain validator set; the
addresses come from the chain (a configured peer address wins)."""

from __future__ import annotations

import logging

import pytest

from ledger.validator_history import ValidatorHistory
from node.config import PeerConfig
from node.membership import PeerDirectory
from tests.contracts.test_governance import add_payload, pass_proposal, rotate_payload
from tests.vectors.contracts.scenario import Chain, key

K, D = 4, 1


def _pub(name: str) -> bytes:
    return key(name).public_key


def _history(chain: Chain) -> ValidatorHistory:
    history = ValidatorHistory(chain.genesis.validator_set, K, D)
    for height, result in enumerate(chain.results, start=1):
        if result.validator_set is not None:
            history = history.record(height, result.validator_set)
    return history


def _dialled(peers: tuple[PeerConfig, ...] | None) -> dict[bytes, str]:
    assert peers is not None, "the admitted keys changed"
    return {p.validator_key: p.address for p in peers}


def test_an_added_validator_is_admitted_and_dialled_at_its_on_chain_address() -> None:
    chain = Chain()
    me = _pub("montreuil.validator")
    configured = [PeerConfig(_pub(f"{t}.validator"), f"10.0.0.{i}:7001")
                  for i, t in enumerate(("bagnolet", "pantin", "vincennes"), start=2)]
    directory = PeerDirectory(me, configured)
    genesis_set = chain.genesis.validator_set
    first = _dialled(directory.follow(genesis_set, _history(chain), 0, lambda: chain.state))
    assert first == {p.validator_key: p.address for p in configured}
    assert not directory.admits(_pub("rosny.validator"))

    pass_proposal(chain, add_payload(validator_address="rosny.example.fr:7001"))
    history = _history(chain)
    # decided, not yet in force: already admitted and dialled (it catches up meanwhile)
    dialled = _dialled(directory.follow(genesis_set, history, 0, lambda: chain.state))
    assert dialled[_pub("rosny.validator")] == "rosny.example.fr:7001"
    assert me not in dialled and directory.admits(_pub("rosny.validator"))
    assert directory.follow(genesis_set, history, 0, lambda: chain.state) is None


def test_a_configured_address_wins_and_a_replaced_key_is_no_longer_dialled() -> None:
    chain = Chain()
    me = _pub("montreuil.validator")
    directory = PeerDirectory(me, [PeerConfig(_pub("vincennes.validator2"), "10.9.9.9:7001")])
    pass_proposal(chain, rotate_payload(validator_address="192.0.2.7:7001"))
    history = _history(chain)
    in_force = history.at(10**6)
    # the change is in force and below the low watermark: only the new set counts
    dialled = _dialled(directory.follow(in_force, history, 100, lambda: chain.state))
    assert dialled[_pub("vincennes.validator2")] == "10.9.9.9:7001"
    assert _pub("vincennes.validator") not in dialled
    assert not directory.admits(_pub("vincennes.validator"))


def test_a_validator_without_any_address_is_named_once(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    chain = Chain()
    directory = PeerDirectory(_pub("montreuil.validator"), [])
    with caplog.at_level(logging.WARNING, "tabellion.membership"):
        peers = directory.follow(chain.genesis.validator_set, _history(chain), 0,
                                 lambda: chain.state)
    assert peers == ()
    assert len(caplog.records) == 3  # bagnolet, pantin, vincennes: no address anywhere
    assert "add it to the peers of the configuration" in caplog.records[0].getMessage()
