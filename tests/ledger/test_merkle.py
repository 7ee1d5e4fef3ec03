"""ledger.merkle: RFC 6962 roots and inclusion proofs, checked against the Certificate
Transparency reference values and against a direct transcription of the RFC's recursive
definitions; every single change to a proof's inputs is detected."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidProof
from ledger.merkle import (
    EMPTY_ROOT,
    PROOF_PATH_MAX,
    InclusionProof,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    root_from_proof,
    verify_inclusion,
)

# The 8 leaves and tree heads used by Certificate Transparency's reference tests.
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PROOFS = {
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}


# --------------------------------------------------------------------------- the RFC, literally


def _mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 section 2.1, recursive as written there."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:k]) + _mth(leaves[k:])).digest()


def _rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1."""
    if len(leaves) <= 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return [*_rfc_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_rfc_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _directions(m: int, n: int) -> list[bool]:
    """For each path element from the leaf up: is the sibling on the right?"""
    if n <= 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*_directions(m, k), True]
    return [*_directions(m - k, n - k), False]


# --------------------------------------------------------------------------- reference values


def test_ct_reference_roots() -> None:
    assert EMPTY_ROOT.hex() == CT_ROOTS[0] == merkle_root([]).hex()
    for size in range(len(CT_LEAVES) + 1):
        assert merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size], size


@pytest.mark.parametrize(("index", "size"), list(CT_PROOFS))
def test_ct_reference_proofs(index: int, size: int) -> None:
    proof = inclusion_proof(CT_LEAVES[:size], index)
    assert [h.hex() for h in proof.path] == CT_PROOFS[(index, size)]
    verify_inclusion(CT_LEAVES[index], proof, bytes.fromhex(CT_ROOTS[size]))


def test_empty_tree_has_no_proofs() -> None:
    with pytest.raises(IndexError, match="outside a tree of 0"):
        inclusion_proof([], 0)
    with pytest.raises(InvalidProof, match="outside a tree of 0"):
        root_from_proof(b"x", InclusionProof(0, 0, ()))


def test_a_leaf_is_not_a_node() -> None:
    """Second-preimage guard: a node's hash input, presented as a leaf, gives another hash."""
    leaves = [b"a", b"b"]
    as_leaf = leaf_hash(leaf_hash(b"a") + leaf_hash(b"b"))
    assert as_leaf != merkle_root(leaves)
    assert merkle_root([leaf_hash(b"a") + leaf_hash(b"b")]) != merkle_root(leaves)


# --------------------------------------------------------------------------- properties

trees = st.lists(st.binary(max_size=12), min_size=1, max_size=70, unique=True)


@settings(max_examples=120, deadline=None)
@given(trees)
def test_root_and_every_path_match_the_rfc(leaves: list[bytes]) -> None:
    root = merkle_root(leaves)
    assert root == _mth(leaves)
    for index, leaf in enumerate(leaves):
        proof = inclusion_proof(leaves, index)
        assert list(proof.path) == _rfc_path(index, leaves)
        assert len(proof.path) <= PROOF_PATH_MAX
        verify_inclusion(leaf, proof, root)


@settings(max_examples=120, deadline=None)
@given(trees, st.data())
def test_any_single_change_is_detected(leaves: list[bytes], data: st.DataObject) -> None:
    root = merkle_root(leaves)
    n = len(leaves)
    index = data.draw(st.integers(0, n - 1), label="index")
    proof = inclusion_proof(leaves, index)
    leaf = leaves[index]

    def fails(candidate_leaf: bytes, candidate: InclusionProof) -> bool:
        try:
            verify_inclusion(candidate_leaf, candidate, root)
        except InvalidProof:
            return True
        return False

    # Another leaf value (including a neighbour's) fails at this index.
    other = data.draw(st.binary(max_size=12).filter(lambda b: b != leaf), label="leaf")
    assert fails(other, proof)
    # Any other index fails: leaves are distinct, and each position has its own path shape.
    for j in range(n):
        if j != index:
            assert fails(leaf, InclusionProof(j, n, proof.path))
    # Any change of one path element, a dropped or an extra element, fails.
    for k in range(len(proof.path)):
        bumped = bytes([proof.path[k][0] ^ 0x01]) + proof.path[k][1:]
        assert fails(leaf, InclusionProof(index, n, (*proof.path[:k], bumped,
                                                      *proof.path[k + 1:])))
        assert fails(leaf, InclusionProof(index, n, proof.path[:k] + proof.path[k + 1:]))
    assert fails(leaf, InclusionProof(index, n, (*proof.path, root)))
    # A different size fails unless it gives this index the very same path shape. The
    # root does not commit to the leaf count (RFC 6962 binds it in the signed tree head);
    # such a proof still proves this leaf at this index, and no leaf that is not in the
    # tree can be proved (docs/protocol.md, "Merkle trees").
    for size in range(1, n + 70):
        if size == n:
            continue
        verified = not fails(leaf, InclusionProof(index, size, proof.path))
        assert verified == (index < size and _directions(index, size) == _directions(index, n))


def test_out_of_range_and_malformed_proofs_are_refused() -> None:
    leaves = [b"a", b"b", b"c"]
    proof = inclusion_proof(leaves, 2)
    root = merkle_root(leaves)
    with pytest.raises(InvalidProof, match="outside a tree of 3"):
        verify_inclusion(b"c", InclusionProof(3, 3, proof.path), root)
    with pytest.raises(InvalidProof, match="longer than the tree is deep"):
        verify_inclusion(b"c", InclusionProof(2, 3, (*proof.path, root, root)), root)
    with pytest.raises(InvalidProof, match="shorter than the tree is deep"):
        verify_inclusion(b"a", InclusionProof(0, 3, ()), root)
    with pytest.raises(IndexError):
        inclusion_proof(leaves, 3)
    for bad in (None, [0, 1], [0, 1, "x"], ["0", 1, []], [0, 1, [b"short"]],
                [0, 1, [bytes(32)] * (PROOF_PATH_MAX + 1)], [True, 2, []], [0, False, []],
                [-1, 2, []], [2, 2, []], [0, 2**64, []]):
        with pytest.raises(InvalidProof):
            InclusionProof.from_value(bad)
    assert InclusionProof.from_value(proof.to_value()) == proof


def test_every_leaf_of_every_size_up_to_70() -> None:
    """Deterministic sweep so that every tree shape up to 70 leaves is covered, not only
    the sizes Hypothesis happens to draw."""
    for n in range(1, 71):
        leaves = [n.to_bytes(2, "big") + i.to_bytes(2, "big") for i in range(n)]
        root = merkle_root(leaves)
        assert root == _mth(leaves)
        for index in range(n):
            proof = inclusion_proof(leaves, index)
            assert list(proof.path) == _rfc_path(index, leaves)
            verify_inclusion(leaves[index], proof, root)
            with pytest.raises(InvalidProof):
                verify_inclusion(leaves[index - 1] if n > 1 else b"?", proof, root)
