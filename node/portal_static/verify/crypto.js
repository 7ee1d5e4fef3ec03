// SHA-256 with domain tags (docs/protocol.md section 2) and Ed25519 (section 4), on WebCrypto.
//
// Rules:
// - tagged_hash(tag, data) = SHA-256(tag || 0x00 || data); signatures cover the same bytes.
// - Ed25519 verification rejects what libsodium rejects: S not below the group order L,
//   a public key or R of small order, a non-canonical public key. WebCrypto does the
//   curve arithmetic; these checks are done here first so that every browser agrees.
// - WebCrypto exists only in a secure context (HTTPS, or http://localhost / 127.0.0.1).

import { concat, bytesEqual } from "./encoding.js";

export const TAGS = Object.freeze({
  TX_ID: "tabellion/tx",
  TX_SIGN: "tabellion/tx-sign",
  HEADER: "tabellion/header",
  VOTE_SIGN: "tabellion/vote-sign",
  GENESIS: "tabellion/genesis",
  VALIDATOR_SET: "tabellion/validator-set",
  RECEIPT: "tabellion/receipt",
  STATE_LEAF: "tabellion/state-leaf",
  STATE_NODE: "tabellion/state-node",
  STATE_KEY: "tabellion/state-key",
});

const ascii = new TextEncoder();

export class CryptoUnavailable extends Error {}

function subtle() {
  if (!globalThis.crypto || !globalThis.crypto.subtle) {
    throw new CryptoUnavailable(
      "ce navigateur ne donne pas accès à WebCrypto ici : ouvrez le portail en HTTPS " +
      "(ou sur localhost)");
  }
  return globalThis.crypto.subtle;
}

export async function sha256(data) {
  return new Uint8Array(await subtle().digest("SHA-256", data));
}

export function signedBytes(tag, data) {
  return concat(ascii.encode(tag), Uint8Array.of(0), data);
}

export async function taggedHash(tag, data) {
  return sha256(signedBytes(tag, data));
}

// Group order L = 2^252 + 27742317777372353535851937790883648493 and field prime p.
const L = (1n << 252n) + 27742317777372353535851937790883648493n;
const P = (1n << 255n) - 19n;

function littleEndian(bytes) {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  return v;
}

// Encodings of the points of order 1, 2, 4 and 8 (and their non-canonical spellings
// p, p+1), sign bit ignored: what libsodium refuses as a public key or as R.
const SMALL_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].map((h) => Uint8Array.from(h.match(/../g).map((x) => parseInt(x, 16))));

export function hasSmallOrder(point) {
  const cleared = point.slice();
  cleared[31] &= 0x7f;
  return SMALL_ORDER.some((s) => {
    const c = s.slice();
    c[31] &= 0x7f;
    return bytesEqual(c, cleared);
  });
}

function canonicalPoint(point) {
  const y = littleEndian(point.slice(0, 31)) | (BigInt(point[31] & 0x7f) << 248n);
  return y < P;
}

const keyCache = new Map();

async function importKey(publicKey) {
  const id = Array.from(publicKey).join(",");
  let key = keyCache.get(id);
  if (key === undefined) {
    key = await subtle().importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    keyCache.set(id, key);
  }
  return key;
}

/** True iff `signature` is a valid Ed25519 signature of `message` by `publicKey`. */
export async function ed25519Verify(publicKey, signature, message) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  if (littleEndian(signature.slice(32)) >= L) return false;
  if (hasSmallOrder(publicKey) || !canonicalPoint(publicKey)) return false;
  if (hasSmallOrder(signature.slice(0, 32))) return false;
  let key;
  try {
    key = await importKey(publicKey);
  } catch (e) {
    if (e instanceof CryptoUnavailable) throw e;
    return false; // not a point of the curve
  }
  return subtle().verify({ name: "Ed25519" }, key, signature, message);
}
