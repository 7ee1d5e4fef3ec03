"""RFC 6962 Merkle trees and inclusion proofs.

Rules:
- leaf hash = SHA-256(0x00 || leaf bytes); node hash = SHA-256(0x01 || left || right).
- The tree of n leaves splits at k, the largest power of two smaller than n
  (RFC 6962 section 2.1); the root of the empty tree is SHA-256 of the empty string.
- One code path serves transactions, receipts and any other log-shaped list.
- ``verify_inclusion`` recomputes the root from (leaf, index, size, path) and compares;
  any change to any of them makes it fail (RFC 9162 section 2.1.3.2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.errors import InvalidProof
from ledger.hashing import HASH_BYTES

PROOF_PATH_MAX = 64
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    # Iterative bottom-up form; equal to the recursive RFC definition because an odd
    # node at the end of a level is promoted unchanged.
    level = list(hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root of the tree whose leaves are the given byte strings."""
    if not leaves:
        return EMPTY_ROOT
    return _root_of_hashes([leaf_hash(leaf) for leaf in leaves])


def merkle_root_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Root of the tree whose leaf hashes are given: a reader that sees some leaves only
    by their hash (a public block view hides payments) still checks the root."""
    return _root_of_hashes(hashes) if hashes else EMPTY_ROOT


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Proof that the leaf at ``index`` is in a tree of ``size`` leaves."""

    index: int
    """Zero-based position of the leaf."""
    size: int
    """Number of leaves in the tree."""
    path: tuple[bytes, ...]
    """Sibling hashes from the leaf up to the root."""

    def to_value(self) -> list[object]:
        return [self.index, self.size, list(self.path)]

    @staticmethod
    def from_value(value: object) -> InclusionProof:
        if not (isinstance(value, list) and len(value) == 3):
            raise InvalidProof("an inclusion proof is [index, size, path]")
        index, size, path = value
        if not (_is_count(index) and _is_count(size) and isinstance(path, list)):
            raise InvalidProof("an inclusion proof is [index, size, path]")
        if not index < size:
            raise InvalidProof(f"leaf index {index} is outside a tree of {size} leaves")
        if len(path) > PROOF_PATH_MAX or not all(
            isinstance(h, bytes) and len(h) == HASH_BYTES for h in path
        ):
            raise InvalidProof("the proof path must hold at most 64 hashes of 32 bytes")
        return InclusionProof(index, size, tuple(path))


def _is_count(value: object) -> bool:
    # bool is an int in Python; a proof index of True must not be accepted as 1.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def inclusion_proof(leaves: Sequence[bytes], index: int) -> InclusionProof:
    """Build the audit path of leaf ``index`` (RFC 6962 PATH)."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is outside a tree of {len(leaves)} leaves")
    hashes = [leaf_hash(leaf) for leaf in leaves]
    path: list[bytes] = []
    _path(hashes, index, path)
    return InclusionProof(index, len(leaves), tuple(path))


def _path(hashes: Sequence[bytes], index: int, out: list[bytes]) -> None:
    n = len(hashes)
    if n <= 1:
        return
    k = _split(n)
    if index < k:
        _path(hashes[:k], index, out)
        out.append(_root_of_hashes(hashes[k:]))
    else:
        _path(hashes[k:], index - k, out)
        out.append(_root_of_hashes(hashes[:k]))


def root_from_proof(leaf: bytes, proof: InclusionProof) -> bytes:
    """Recompute the root implied by a proof (RFC 9162 2.1.3.2); raise if malformed."""
    index, size = proof.index, proof.size
    if not 0 <= index < size:
        raise InvalidProof(f"leaf index {index} is outside a tree of {size} leaves")
    fn, sn = index, size - 1
    result = leaf_hash(leaf)
    for sibling in proof.path:
        if sn == 0:
            raise InvalidProof("the proof path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InvalidProof("the proof path is shorter than the tree is deep")
    return result


def verify_inclusion(leaf: bytes, proof: InclusionProof, root: bytes) -> None:
    """Raise ``InvalidProof`` unless ``leaf`` is at ``proof.index`` under ``root``."""
    if root_from_proof(leaf, proof) != root:
        raise InvalidProof("the inclusion proof does not lead to the expected root")
