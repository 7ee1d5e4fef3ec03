// Receipt verification in the browser (docs/receipt.md), a second implementation of the
// same document as `tabellion receipt verify`: any disagreement is a bug in one of them.
//
// Rules:
// - Trusts nothing but the genesis file the citizen chose; the node that served the page
//   is not trusted (the receipt and the genesis are loaded as files).
// - Checks run in the order of docs/receipt.md; the first failure throws ReceiptError
//   whose `part` names the faulty part of the file exactly as the Python verifier does
//   (`record.tx_proof`, `validator_changes[0].after.proof`, ...) and whose `reason`
//   says in plain French what that means.
// - Integers beyond 2^53 must reach this module as BigInt: parse files with
//   parseJsonExact(), never JSON.parse alone.

import { decode, encode, hex, unhex, bytesEqual, DecodeError } from "./encoding.js";
import { ProofError, verifyInclusion, verifyStateProof } from "./proofs.js";
import {
  RecordError, decodeTransaction, decodeHeader, decodeCertificate, decodeReceipt,
  transactionId, transactionSignatureValid, blockHash, validatorSet, verifyCertificate,
} from "./records.js";

export const FORMAT = "tabellion-receipt/1";
export const RECEIPT_FILE_BYTES_MAX = 4 * 1024 * 1024;
export const VALIDATOR_CHANGES_MAX = 1024;
const VALIDATORS_KEY = new TextEncoder().encode("sys/validators");

export class ReceiptError extends Error {
  constructor(part, reason) {
    super(`${part}: ${reason}`);
    this.part = part;
    this.reason = reason;
  }
}

/** JSON.parse keeping integers beyond 2^53 exact (as BigInt) and refusing fractions. */
export function parseJsonExact(textValue) {
  return JSON.parse(textValue, (key, value, context) => {
    if (typeof value === "number" && !Number.isSafeInteger(value)) {
      const source = context && context.source;
      if (typeof source === "string" && /^-?[0-9]+$/.test(source)) return BigInt(source);
      throw new SyntaxError(`${source ?? value} is not an integer (Tabellion has no decimals)`);
    }
    return value;
  });
}

function get(obj, key, part) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj) || !(key in obj)) {
    throw new ReceiptError(part, `le champ « ${key} » manque`);
  }
  return obj[key];
}

function nonNegative(obj, key, part) {
  const v = get(obj, key, part);
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new ReceiptError(`${part}.${key}`, "doit être un entier positif ou nul");
  }
  return v;
}

function bytesOf(value, part) {
  try {
    return unhex(value);
  } catch {
    throw new ReceiptError(part, "doit être une chaîne hexadécimale");
  }
}

function record(decoder, obj, key, part, kind) {
  const data = bytesOf(get(obj, key, part), `${part}.${key}`);
  try {
    return decoder(data);
  } catch (e) {
    if (e instanceof RecordError || e instanceof DecodeError) {
      throw new ReceiptError(`${part}.${key}`, `n'est pas un ${kind} canonique : ${e.message}`);
    }
    throw e;
  }
}

function certified(obj, part) {
  return {
    header: record(decodeHeader, obj, "header", part, "en-tête de bloc"),
    certificate: record(decodeCertificate, obj, "certificate", part, "certificat"),
  };
}

function proofOf(obj, part) {
  const path = get(obj, "path", part);
  if (!Array.isArray(path)) throw new ReceiptError(part, "path doit être une liste de hachages");
  return {
    index: nonNegative(obj, "index", part),
    size: nonNegative(obj, "size", part),
    path: path.map((h) => bytesOf(h, `${part}.path`)),
  };
}

/** First height governed by a set decided while executing block `decidedAt`. */
export function effectiveHeight(decidedAt, interval, lag) {
  const certifiedAt = decidedAt + lag;
  return Math.ceil(certifiedAt / interval) * interval + 1;
}

class History {
  constructor(genesisSet) { this.genesisSet = genesisSet; this.changes = []; }
  at(height) {
    let current = this.genesisSet;
    for (const [effective, set] of this.changes) if (effective <= height) current = set;
    return current;
  }
}

async function checkCertified(c, history, genesis, part) {
  const h = c.header;
  if (h.chainId !== genesis.chainId) {
    throw new ReceiptError(`${part}.header`, `appartient à un autre réseau (${h.chainId})`);
  }
  const validators = history.at(h.height);
  if (!bytesEqual(h.validatorSetHash, validators.setHash)) {
    throw new ReceiptError(`${part}.header`, `le bloc ${h.height} nomme un autre ensemble de ` +
      "validateurs que celui en vigueur à cette hauteur (voir validator_changes)");
  }
  try {
    await verifyCertificate(c.certificate, h, validators);
  } catch (e) {
    if (e instanceof RecordError) throw new ReceiptError(`${part}.certificate`, e.message);
    throw e;
  }
}

function validatorsValue(set) {
  return encode(set.keys.map((k) => hex(k)));
}

async function checkEvidence(e, expected, atState, history, genesis, part) {
  if (e.header.height !== atState + genesis.lag) {
    throw new ReceiptError(`${part}.header`, `doit être l'en-tête ${atState + genesis.lag} ` +
      `(état après le bloc ${atState})`);
  }
  await checkCertified(e, history, genesis, part);
  if (e.value === null || !bytesEqual(e.value, validatorsValue(expected))) {
    throw new ReceiptError(`${part}.value`, "n'est pas l'ensemble de validateurs annoncé par ce changement");
  }
  try {
    await verifyStateProof(e.header.stateRoot, VALIDATORS_KEY, e.value, e.proof);
  } catch (err) {
    if (err instanceof ProofError) throw new ReceiptError(`${part}.proof`, `ne prouve pas la valeur : ${err.message}`);
    throw err;
  }
}

async function readChanges(doc) {
  const raw = get(doc, "validator_changes", "receipt");
  if (!Array.isArray(raw) || raw.length > VALIDATOR_CHANGES_MAX) {
    throw new ReceiptError("validator_changes", `doit être une liste d'au plus ${VALIDATOR_CHANGES_MAX} changements`);
  }
  const changes = [];
  for (const [i, item] of raw.entries()) {
    const part = `validator_changes[${i}]`;
    const keys = get(item, "validators", part);
    if (!Array.isArray(keys)) throw new ReceiptError(`${part}.validators`, "doit être une liste de clés hexadécimales");
    let validators;
    try {
      validators = await validatorSet(keys.map((k) => bytesOf(k, `${part}.validators`)));
    } catch (e) {
      if (e instanceof RecordError) throw new ReceiptError(`${part}.validators`, e.message);
      throw e;
    }
    const sides = {};
    for (const side of ["before", "after"]) {
      const obj = get(item, side, part);
      const value = get(obj, "value", `${part}.${side}`);
      sides[side] = {
        ...certified(obj, `${part}.${side}`),
        value: value === null ? null : bytesOf(value, `${part}.${side}.value`),
        proof: bytesOf(get(obj, "proof", `${part}.${side}`), `${part}.${side}.proof`),
      };
    }
    changes.push({ decidedAt: nonNegative(item, "decided_at", part), validators, ...sides });
  }
  return changes;
}

// Plain JSON views of the records (docs/protocol.md section 8), to compare `readable`.
function plain(value) {
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [k, plain(v)]));
  if (Array.isArray(value)) return value.map(plain);
  if (value instanceof Uint8Array) return hex(value);
  return value;
}

function sameJson(a, b) {
  const isNum = (x) => typeof x === "number" || typeof x === "bigint";
  if (isNum(a) && isNum(b)) return Number.isInteger(Number(a)) && BigInt(a) === BigInt(b);
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return sameJson(ka, kb) && ka.every((k) => sameJson(a[k], b[k]));
}

async function views(tx, receipt, header) {
  return {
    transaction: {
      tx_id: hex(await transactionId(tx)), chain_id: tx.chainId, contract: tx.contract,
      action: tx.action, payload: plain(tx.payload), signer: hex(tx.signer),
      nonce: tx.nonce, expiry_ms: tx.expiryMs, signature: hex(tx.signature),
    },
    receipt: { tx_id: hex(receipt.txId), code: receipt.code, message: receipt.message, data: plain(receipt.data) },
    header: {
      chain_id: header.chainId, height: header.height, prev_hash: hex(header.prevHash),
      proposer: hex(header.proposer), view: header.view, time_ms: header.timeMs,
      txs_root: hex(header.txsRoot), results_root: hex(header.resultsRoot),
      state_root: hex(header.stateRoot), validator_set_hash: hex(header.validatorSetHash),
      block_hash: hex(await blockHash(header)),
    },
  };
}

/** Verify a parsed receipt against a genesis (from readGenesis); return what it proves:
 *  { transaction, receipt, height, header, certificate, validators, validatorChanges }. */
export async function verifyReceipt(genesis, doc) {
  if (get(doc, "format", "receipt") !== FORMAT) throw new ReceiptError("format", `doit être « ${FORMAT} »`);
  if (get(doc, "chain_id", "receipt") !== genesis.chainId) {
    throw new ReceiptError("chain_id", "n'est pas le réseau de ce fichier de genèse");
  }
  if (!bytesEqual(bytesOf(get(doc, "genesis_hash", "receipt"), "genesis_hash"), genesis.genesisHash)) {
    throw new ReceiptError("genesis_hash", "n'est pas l'empreinte de ce fichier de genèse");
  }
  const history = new History(genesis.validators);
  let previous = genesis.validators;
  let lastDecided = 0;
  for (const [i, change] of (await readChanges(doc)).entries()) {
    const part = `validator_changes[${i}]`;
    if (change.decidedAt <= lastDecided) {
      throw new ReceiptError(`${part}.decided_at`, "les changements doivent être dans l'ordre des hauteurs");
    }
    lastDecided = change.decidedAt;
    await checkEvidence(change.before, previous, change.decidedAt - 1, history, genesis, `${part}.before`);
    await checkEvidence(change.after, change.validators, change.decidedAt, history, genesis, `${part}.after`);
    const start = effectiveHeight(change.decidedAt, genesis.interval, genesis.lag);
    const last = history.changes[history.changes.length - 1];
    // The last set decided before a boundary wins, as in consensus and the state.
    if (last !== undefined && start === last[0]) last[1] = change.validators;
    else history.changes.push([start, change.validators]);
    previous = change.validators;
  }
  const rec = get(doc, "record", "receipt");
  const height = nonNegative(rec, "height", "record");
  const tx = record(decodeTransaction, rec, "transaction", "record", "transaction");
  const receipt = record(decodeReceipt, rec, "receipt", "record", "reçu");
  const block = certified(get(rec, "block", "record"), "record.block");
  const results = certified(get(rec, "results_block", "record"), "record.results_block");
  if (tx.chainId !== genesis.chainId) {
    throw new ReceiptError("record.transaction", `appartient à un autre réseau (${tx.chainId})`);
  }
  if (!(await transactionSignatureValid(tx))) {
    throw new ReceiptError("record.transaction", "la signature ne correspond pas : l'acte a été " +
      "modifié après que son auteur l'a signé");
  }
  if (block.header.height !== height) {
    throw new ReceiptError("record.block.header", `est pour la hauteur ${block.header.height}, pas ${height}`);
  }
  if (results.header.height !== height + genesis.lag) {
    throw new ReceiptError("record.results_block.header", `doit être l'en-tête ${height + genesis.lag} ` +
      "(hauteur + execution_lag)");
  }
  await checkCertified(block, history, genesis, "record.block");
  await checkCertified(results, history, genesis, "record.results_block");
  const txProof = proofOf(get(rec, "tx_proof", "record"), "record.tx_proof");
  try {
    await verifyInclusion(tx.bytes, txProof, block.header.txsRoot);
  } catch (e) {
    if (e instanceof ProofError) throw new ReceiptError("record.tx_proof", `l'acte n'est pas dans le bloc ${height} : ${e.message}`);
    throw e;
  }
  const txId = await transactionId(tx);
  if (!bytesEqual(receipt.txId, txId)) throw new ReceiptError("record.receipt", "est le reçu d'une autre transaction");
  const receiptProof = proofOf(get(rec, "receipt_proof", "record"), "record.receipt_proof");
  if (receiptProof.index !== txProof.index) {
    throw new ReceiptError("record.receipt_proof", "n'est pas à la position de l'acte");
  }
  try {
    await verifyInclusion(receipt.bytes, receiptProof, results.header.resultsRoot);
  } catch (e) {
    if (e instanceof ProofError) {
      throw new ReceiptError("record.receipt_proof", "le résultat n'est pas celui certifié dans " +
        `l'en-tête ${results.header.height} : ${e.message}`);
    }
    throw e;
  }
  const readable = doc.readable;
  if (readable !== undefined && readable !== null) {
    const expected = await views(tx, receipt, block.header);
    for (const key of ["transaction", "receipt", "header"]) {
      if (!sameJson(get(readable, key, "readable"), expected[key])) {
        throw new ReceiptError(`readable.${key}`, "diffère de l'acte signé : la copie lisible a été modifiée");
      }
    }
  }
  return {
    transaction: tx, txId, receipt, height, header: block.header, certificate: block.certificate,
    validators: history.at(height), validatorChanges: history.changes.length,
  };
}

export { decode, hex };
