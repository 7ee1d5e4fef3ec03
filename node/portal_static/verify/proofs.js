// Merkle inclusion proofs (RFC 6962 / RFC 9162, docs/protocol.md section 5) and state
// proofs of the authenticated state tree (docs/protocol.md section 10).
//
// Rules: a proof is accepted only if it leads exactly to the expected root; every
// failure throws ProofError with a sentence saying why.

import { concat, bytesEqual, decode } from "./encoding.js";
import { sha256, taggedHash, TAGS } from "./crypto.js";

export class ProofError extends Error {}

export const PATH_MAX = 64;
export const STATE_SIBLINGS_MAX = 256;

export async function leafHash(data) {
  return sha256(concat(Uint8Array.of(0), data));
}

async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/** RFC 9162 section 2.1.3.2: `data` is leaf `index` of a tree of `size` leaves with `root`. */
export async function verifyInclusion(data, proof, root) {
  const { index, size, path } = proof;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || size < 1) {
    throw new ProofError("index and size must be integers, size at least 1");
  }
  if (index >= size) throw new ProofError(`index ${index} is not below size ${size}`);
  if (path.length > PATH_MAX) throw new ProofError(`a path holds at most ${PATH_MAX} hashes`);
  let fn = BigInt(index);
  let sn = BigInt(size - 1);
  let r = await leafHash(data);
  for (const p of path) {
    if (p.length !== 32) throw new ProofError("every hash of a path is 32 bytes");
    if (sn === 0n) throw new ProofError("the path is longer than the tree is deep");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError("the path is shorter than the tree is deep");
  if (!bytesEqual(r, root)) throw new ProofError("the path does not lead to the certified root");
}

function isHash(x) {
  return x instanceof Uint8Array && x.length === 32;
}

function bit(hash, depth) {
  return (hash[depth >> 3] >> (7 - (depth & 7))) & 1;
}

function sharedPrefixBits(a, b) {
  let n = 0;
  while (n < 256 && bit(a, n) === bit(b, n)) n++;
  return n;
}

/** Throws ProofError unless `proofBytes` (canonical [leaf|nil, [siblings]]) shows that
 *  `key` holds `value` (Uint8Array, or null for "absent") under `root`. */
export async function verifyStateProof(root, key, value, proofBytes) {
  let proof;
  try {
    proof = decode(proofBytes);
  } catch (e) {
    throw new ProofError(`the proof is not canonical msgpack: ${e.message}`);
  }
  if (!Array.isArray(proof) || proof.length !== 2 || !Array.isArray(proof[1])) {
    throw new ProofError("a state proof is [leaf or nil, [sibling hashes]]");
  }
  const [leaf, siblings] = proof;
  if (siblings.length > STATE_SIBLINGS_MAX || !siblings.every(isHash)) {
    throw new ProofError(`at most ${STATE_SIBLINGS_MAX} siblings of 32 bytes each`);
  }
  if (leaf !== null && !(Array.isArray(leaf) && leaf.length === 2 && leaf.every(isHash))) {
    throw new ProofError("the leaf of a state proof is [key_hash, value_hash]");
  }
  const path = await taggedHash(TAGS.STATE_KEY, key);
  let current;
  if (value !== null) {
    if (leaf === null || !bytesEqual(leaf[0], path)) {
      throw new ProofError("the proof shows that this key has no value in this state");
    }
    if (!bytesEqual(leaf[1], await sha256(value))) {
      throw new ProofError("the proof is for another value of this key");
    }
    current = await taggedHash(TAGS.STATE_LEAF, concat(leaf[0], leaf[1]));
  } else if (leaf === null) {
    current = await taggedHash(TAGS.STATE_NODE, new Uint8Array(0));
  } else {
    if (bytesEqual(leaf[0], path)) throw new ProofError("the proof shows that this key has a value");
    if (sharedPrefixBits(leaf[0], path) < siblings.length) {
      throw new ProofError("the proof's leaf does not lie on this key's path");
    }
    current = await taggedHash(TAGS.STATE_LEAF, concat(leaf[0], leaf[1]));
  }
  for (let depth = siblings.length - 1; depth >= 0; depth--) {
    current = bit(path, depth)
      ? await taggedHash(TAGS.STATE_NODE, concat(siblings[depth], current))
      : await taggedHash(TAGS.STATE_NODE, concat(current, siblings[depth]));
  }
  if (!bytesEqual(current, root)) {
    throw new ProofError("the state proof does not lead to the certified state root");
  }
}
