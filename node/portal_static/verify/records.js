// Protocol records (docs/protocol.md sections 3 and 6): decoding with every field rule,
// ids and hashes, validator sets, certificates, the genesis hash.
//
// Rules: a record is a canonical msgpack array of its fields in a fixed order; a decoder
// checks the array length, then each field's type and bounds, and throws RecordError
// naming the field.

import { decode, encode, hex, unhex, bytesEqual } from "./encoding.js";
import { taggedHash, signedBytes, ed25519Verify, TAGS } from "./crypto.js";

export class RecordError extends Error {}

const utf8 = new TextEncoder();
const U64_MAX = (1n << 64n) - 1n;
const CERTIFICATE_SIGNATURES_MAX = 256;
const VALIDATORS_MAX = 256;
const PAYLOAD_BYTES_MAX = 64 * 1024;
const JSON_DEPTH_MAX = 16;
const COMMIT = 2;

function need(ok, field, rule) {
  if (!ok) throw new RecordError(`${field}: ${rule}`);
}

function text(v, field, min, max) {
  need(typeof v === "string", field, "must be text");
  const n = utf8.encode(v).length;
  need(n >= min && n <= max, field, `must be ${min} to ${max} bytes of UTF-8`);
  return v;
}

function u64(v, field) {
  need((typeof v === "number" && Number.isSafeInteger(v) && v >= 0) ||
       (typeof v === "bigint" && v >= 0n && v <= U64_MAX), field, "must be an integer 0..2^64-1");
  return v;
}

function bin(v, field, size) {
  need(v instanceof Uint8Array && v.length === size, field, `must be ${size} bytes`);
  return v;
}

function jsonCompatible(v, depth, field) {
  if (v === null || typeof v === "boolean" || typeof v === "string" ||
      typeof v === "number" || typeof v === "bigint") return;
  need(!(v instanceof Uint8Array), field, "may not hold byte strings");
  need(depth < JSON_DEPTH_MAX, field, `is nested deeper than ${JSON_DEPTH_MAX} levels`);
  const items = v instanceof Map ? v.values() : v;
  for (const item of items) jsonCompatible(item, depth + 1, field);
}

function jsonMap(v, field) {
  need(v instanceof Map, field, "must be a map");
  need(encode(v).length <= PAYLOAD_BYTES_MAX, field, `must be at most ${PAYLOAD_BYTES_MAX} bytes`);
  jsonCompatible(v, 0, field);
  return v;
}

function fields(bytes, count, kind) {
  let value;
  try {
    value = decode(bytes);
  } catch (e) {
    throw new RecordError(`is not a canonical ${kind}: ${e.message}`);
  }
  need(Array.isArray(value) && value.length === count, kind, `must be an array of ${count} fields`);
  return value;
}

/** A decoded transaction: { chainId, contract, action, payload (Map), signer, nonce,
 *  expiryMs, signature, body (canonical bytes of the unsigned body), bytes }. */
export function decodeTransaction(bytes) {
  need(bytes.length <= 96 * 1024, "transaction", "must be at most 96 KiB");
  const f = fields(bytes, 8, "transaction");
  const tx = {
    chainId: text(f[0], "chain_id", 1, 64),
    contract: text(f[1], "contract", 1, 64),
    action: text(f[2], "action", 1, 64),
    payload: jsonMap(f[3], "payload"),
    signer: bin(f[4], "signer", 32),
    nonce: u64(f[5], "nonce"),
    expiryMs: u64(f[6], "expiry_ms"),
    signature: bin(f[7], "signature", 64),
    bytes,
  };
  tx.body = encode(f.slice(0, 7));
  return tx;
}

export async function transactionId(tx) {
  return taggedHash(TAGS.TX_ID, tx.body);
}

export async function transactionSignatureValid(tx) {
  return ed25519Verify(tx.signer, tx.signature, signedBytes(TAGS.TX_SIGN, tx.body));
}

export function decodeHeader(bytes) {
  const f = fields(bytes, 10, "header");
  return {
    chainId: text(f[0], "chain_id", 1, 64),
    height: Number(u64(f[1], "height")),
    prevHash: bin(f[2], "prev_hash", 32),
    proposer: bin(f[3], "proposer", 32),
    view: u64(f[4], "view"),
    timeMs: Number(u64(f[5], "time_ms")),
    txsRoot: bin(f[6], "txs_root", 32),
    resultsRoot: bin(f[7], "results_root", 32),
    stateRoot: bin(f[8], "state_root", 32),
    validatorSetHash: bin(f[9], "validator_set_hash", 32),
    bytes,
  };
}

export async function blockHash(header) {
  return taggedHash(TAGS.HEADER, header.bytes);
}

export function decodeCertificate(bytes) {
  const f = fields(bytes, 4, "certificate");
  need(Array.isArray(f[3]) && f[3].length <= CERTIFICATE_SIGNATURES_MAX, "signatures",
    `must be a list of at most ${CERTIFICATE_SIGNATURES_MAX} pairs`);
  const signatures = f[3].map((pair, i) => {
    need(Array.isArray(pair) && pair.length === 2, `signatures[${i}]`, "must be [voter, signature]");
    return { voter: bin(pair[0], `signatures[${i}].voter`, 32),
             signature: bin(pair[1], `signatures[${i}].signature`, 64) };
  });
  return {
    height: Number(u64(f[0], "height")),
    view: u64(f[1], "view"),
    blockHash: bin(f[2], "block_hash", 32),
    signatures,
  };
}

export function decodeReceipt(bytes) {
  const f = fields(bytes, 4, "receipt");
  return {
    txId: bin(f[0], "tx_id", 32),
    code: text(f[1], "code", 1, 64),
    message: text(f[2], "message", 0, 1024),
    data: jsonMap(f[3], "data"),
    bytes,
  };
}

function compareKeys(a, b) {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** A validator set from keys (any order): sorted, distinct, with its hash and quorum. */
export async function validatorSet(keys) {
  need(keys.length >= 1 && keys.length <= VALIDATORS_MAX, "validators",
    `must hold 1 to ${VALIDATORS_MAX} keys`);
  keys.forEach((k, i) => bin(k, `validators[${i}]`, 32));
  const sorted = [...keys].sort(compareKeys);
  for (let i = 1; i < sorted.length; i++) {
    need(compareKeys(sorted[i - 1], sorted[i]) !== 0, "validators", "must not repeat a key");
  }
  const n = sorted.length;
  const f = Math.floor((n - 1) / 3);
  return {
    keys: sorted,
    n,
    f,
    quorum: Math.ceil((n + f + 1) / 2),
    setHash: await taggedHash(TAGS.VALIDATOR_SET, encode([sorted])),
    has(key) { return sorted.some((k) => bytesEqual(k, key)); },
  };
}

/** Throws RecordError unless `cert` is a valid commit certificate of `header` under
 *  `validators` (docs/protocol.md 3.5, the five checks in order). */
export async function verifyCertificate(cert, header, validators) {
  const hash = await blockHash(header);
  if (cert.height !== header.height) throw new RecordError(`is for height ${cert.height}, not ${header.height}`);
  if (!bytesEqual(cert.blockHash, hash)) throw new RecordError("is for another block (its hash differs)");
  for (let i = 1; i < cert.signatures.length; i++) {
    if (compareKeys(cert.signatures[i - 1].voter, cert.signatures[i].voter) >= 0) {
      throw new RecordError("voters are not strictly increasing");
    }
  }
  for (const s of cert.signatures) {
    if (!validators.has(s.voter)) throw new RecordError(`voter ${hex(s.voter).slice(0, 16)}… is not a validator at this height`);
  }
  if (cert.signatures.length < validators.quorum) {
    throw new RecordError(`${cert.signatures.length} signatures, a quorum is ${validators.quorum}`);
  }
  const vote = signedBytes(TAGS.VOTE_SIGN, encode([header.chainId, COMMIT, cert.view, cert.height, cert.blockHash]));
  const results = await Promise.all(cert.signatures.map((s) => ed25519Verify(s.voter, s.signature, vote)));
  const bad = results.indexOf(false);
  if (bad >= 0) {
    throw new RecordError(`the signature of voter ${hex(cert.signatures[bad].voter).slice(0, 16)}… does not verify`);
  }
}

// ------------------------------------------------------------------ genesis (section 6)

const CHAIN_ID_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SIRET_RE = /^[0-9]{14}$/;
const KEY_RE = /^[0-9a-f]{64}$/;
const ROLES = ["admin", "clerk", "social_aid_agent", "auditor", "intake", "meter_gateway"];

function int(v, field, min, max) {
  need(typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max, field,
    `must be an integer in ${min}..${max}`);
  return v;
}

function obj(v, field) {
  need(v !== null && typeof v === "object" && !Array.isArray(v), field, "must be an object");
  return v;
}

/** Check a parsed genesis file; return { chainId, genesisHash, validators, lag, interval,
 *  municipalities: [{name, siret, validatorKey, memberKeys}] }. */
export async function readGenesis(doc) {
  obj(doc, "genesis");
  need(typeof doc.chain_id === "string" && CHAIN_ID_RE.test(doc.chain_id), "chain_id",
    "must match [a-z0-9][a-z0-9._-]{0,63}");
  const time = doc.genesis_time_ms;
  need((typeof time === "number" && Number.isSafeInteger(time) && time >= 0) ||
       (typeof time === "bigint" && time >= 0n && time < (1n << 63n)), "genesis_time_ms",
    "must be an integer 0..2^63-1");
  const c = obj(doc.consensus, "consensus");
  const interval = int(c.checkpoint_interval, "consensus.checkpoint_interval", 1, 10000);
  const window = int(c.watermark_window, "consensus.watermark_window", 2 * interval, 1 << 30);
  need(window % interval === 0, "consensus.watermark_window", "must be a multiple of checkpoint_interval");
  const txsMax = int(c.block_txs_max, "consensus.block_txs_max", 1, 10000);
  const bytesMax = int(c.block_bytes_max, "consensus.block_bytes_max", 1024, 8 * 1024 * 1024);
  const timeout = int(c.view_timeout_ms, "consensus.view_timeout_ms", 100, 600000);
  const lag = int(c.execution_lag, "consensus.execution_lag", 1, interval);
  const g = obj(doc.governance, "governance");
  const den = int(g.approval_denominator, "governance.approval_denominator", 1, 1000);
  const num = int(g.approval_numerator, "governance.approval_numerator", 1, den);
  need(Array.isArray(doc.municipalities) && doc.municipalities.length >= 1 &&
       doc.municipalities.length <= 256, "municipalities", "must list 1 to 256 municipalities");
  const seen = new Set();
  const distinct = (value, field) => {
    need(!seen.has(value), field, "repeats a SIRET or key used elsewhere in the file");
    seen.add(value);
  };
  const municipalities = doc.municipalities.map((m, i) => {
    const at = `municipalities[${i}]`;
    obj(m, at);
    text(m.name, `${at}.name`, 1, 64);
    need(typeof m.siret === "string" && SIRET_RE.test(m.siret), `${at}.siret`, "must be 14 digits");
    distinct(`s${m.siret}`, `${at}.siret`);
    need(typeof m.validator_key === "string" && KEY_RE.test(m.validator_key),
      `${at}.validator_key`, "must be 64 lowercase hex digits");
    distinct(`k${m.validator_key}`, `${at}.validator_key`);
    need(Array.isArray(m.members), `${at}.members`, "must be a list");
    const members = m.members.map((x, j) => {
      obj(x, `${at}.members[${j}]`);
      need(typeof x.key === "string" && KEY_RE.test(x.key), `${at}.members[${j}].key`, "must be 64 lowercase hex digits");
      distinct(`k${x.key}`, `${at}.members[${j}].key`);
      need(ROLES.includes(x.role), `${at}.members[${j}].role`, `must be one of ${ROLES.join(", ")}`);
      return [unhex(x.key), x.role];
    });
    need(members.some(([, role]) => role === "admin"), `${at}.members`, "needs at least one admin");
    return { name: m.name, siret: m.siret, validatorKey: unhex(m.validator_key), members };
  });
  const normalised = [
    doc.chain_id, time,
    municipalities.map((m) => [m.name, m.siret, m.validatorKey, m.members]),
    [interval, window, txsMax, bytesMax, timeout, lag],
    num, den,
  ];
  return {
    chainId: doc.chain_id,
    genesisHash: await taggedHash(TAGS.GENESIS, encode(normalised)),
    validators: await validatorSet(municipalities.map((m) => m.validatorKey)),
    lag,
    interval,
    municipalities: municipalities.map((m) => ({
      name: m.name, siret: m.siret, validatorKey: m.validatorKey,
      memberKeys: m.members.map(([k]) => k),
    })),
  };
}
