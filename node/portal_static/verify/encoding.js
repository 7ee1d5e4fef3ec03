// Canonical msgpack (docs/protocol.md section 1), written from the document.
//
// Rules:
// - decode() accepts exactly one value, within the bounds of the protocol, and only if
//   re-encoding it gives back the same bytes (the one canonical spelling).
// - Values: null, booleans, integers (Number when safe, BigInt beyond 2^53), strings,
//   Uint8Array for byte strings, Array, Map (text keys) for maps.
// - Floats, extension types, 0xc1, non-text keys and invalid UTF-8 are errors.

export const LIMITS = Object.freeze({
  inputBytesMax: 8 * 1024 * 1024,
  textBytesMax: 1024 * 1024,
  bytesMax: 4 * 1024 * 1024,
  arrayLengthMax: 100000,
  mapSizeMax: 1024,
  depthMax: 32,
});

export class DecodeError extends Error {}

const UINT64_MAX = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export function bytesEqual(a, b) {
  return a.length === b.length && compareBytes(a, b) === 0;
}

class Writer {
  constructor() { this.parts = []; this.length = 0; }
  bytes(arr) { this.parts.push(arr); this.length += arr.length; }
  byte(...values) { this.bytes(Uint8Array.from(values)); }
  uint(prefix, value, size) {
    const out = new Uint8Array(1 + size);
    out[0] = prefix;
    let v = BigInt.asUintN(size * 8, BigInt(value));
    for (let i = size; i >= 1; i--) { out[i] = Number(v & 0xffn); v >>= 8n; }
    this.bytes(out);
  }
  result() {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) { out.set(p, at); at += p.length; }
    return out;
  }
}

function writeInteger(w, value) {
  const v = BigInt(value);
  if (v > UINT64_MAX || v < INT64_MIN) throw new DecodeError("integer out of range");
  if (v >= 0n) {
    if (v <= 0x7fn) w.byte(Number(v));
    else if (v <= 0xffn) w.uint(0xcc, v, 1);
    else if (v <= 0xffffn) w.uint(0xcd, v, 2);
    else if (v <= 0xffffffffn) w.uint(0xce, v, 4);
    else w.uint(0xcf, v, 8);
  } else if (v >= -32n) w.byte(Number(v) & 0xff);
  else if (v >= -0x80n) w.uint(0xd0, v, 1);
  else if (v >= -0x8000n) w.uint(0xd1, v, 2);
  else if (v >= -0x80000000n) w.uint(0xd2, v, 4);
  else w.uint(0xd3, v, 8);
}

function writeLength(w, n, fix, fixMax, codes) {
  if (fix !== null && n <= fixMax) w.byte(fix | n);
  else if (codes[0] !== null && n <= 0xff) w.uint(codes[0], n, 1);
  else if (n <= 0xffff) w.uint(codes[1], n, 2);
  else w.uint(codes[2], n, 4);
}

function writeValue(w, value) {
  if (value === null) w.byte(0xc0);
  else if (value === false) w.byte(0xc2);
  else if (value === true) w.byte(0xc3);
  else if (typeof value === "bigint") writeInteger(w, value);
  else if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new DecodeError("floats are not allowed");
    writeInteger(w, value);
  } else if (typeof value === "string") {
    const b = utf8.encode(value);
    writeLength(w, b.length, 0xa0, 31, [0xd9, 0xda, 0xdb]);
    w.bytes(b);
  } else if (value instanceof Uint8Array) {
    writeLength(w, value.length, null, -1, [0xc4, 0xc5, 0xc6]);
    w.bytes(value);
  } else if (Array.isArray(value)) {
    writeLength(w, value.length, 0x90, 15, [null, 0xdc, 0xdd]);
    for (const item of value) writeValue(w, item);
  } else if (value instanceof Map || typeof value === "object") {
    const entries = value instanceof Map ? [...value.entries()] : Object.entries(value);
    const keyed = entries.map(([k, v]) => {
      if (typeof k !== "string") throw new DecodeError("map keys must be text");
      return [utf8.encode(k), k, v];
    });
    keyed.sort((a, b) => compareBytes(a[0], b[0]));
    writeLength(w, keyed.length, 0x80, 15, [null, 0xde, 0xdf]);
    for (const [, k, v] of keyed) { writeValue(w, k); writeValue(w, v); }
  } else throw new DecodeError(`cannot encode a ${typeof value}`);
}

/** The canonical msgpack bytes of a value. */
export function encode(value) {
  const w = new Writer();
  writeValue(w, value);
  return w.result();
}

class Reader {
  constructor(bytes, limits) { this.b = bytes; this.at = 0; this.limits = limits; }
  need(n) {
    if (this.at + n > this.b.length) throw new DecodeError("truncated input");
  }
  u8() { this.need(1); return this.b[this.at++]; }
  uint(size) {
    this.need(size);
    let v = 0n;
    for (let i = 0; i < size; i++) v = (v << 8n) | BigInt(this.b[this.at++]);
    return v;
  }
  take(n) {
    this.need(n);
    const out = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
}

function integer(v) {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(v) : v;
}

function readText(r, n) {
  if (n > r.limits.textBytesMax) throw new DecodeError(`text longer than ${r.limits.textBytesMax} bytes`);
  try {
    return strictUtf8.decode(r.take(n));
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw new DecodeError("invalid UTF-8 text");
  }
}

function readBytes(r, n) {
  if (n > r.limits.bytesMax) throw new DecodeError(`byte string longer than ${r.limits.bytesMax} bytes`);
  return r.take(n).slice();
}

function readArray(r, n, depth) {
  if (n > r.limits.arrayLengthMax) throw new DecodeError(`array longer than ${r.limits.arrayLengthMax}`);
  const out = [];
  for (let i = 0; i < n; i++) out.push(readValue(r, depth + 1));
  return out;
}

function readMap(r, n, depth) {
  if (n > r.limits.mapSizeMax) throw new DecodeError(`map larger than ${r.limits.mapSizeMax} pairs`);
  const out = new Map();
  for (let i = 0; i < n; i++) {
    const key = readValue(r, depth + 1);
    if (typeof key !== "string") throw new DecodeError("map keys must be text");
    if (out.has(key)) throw new DecodeError(`duplicate map key ${JSON.stringify(key)}`);
    out.set(key, readValue(r, depth + 1));
  }
  return out;
}

function readValue(r, depth) {
  if (depth > r.limits.depthMax) throw new DecodeError(`nesting deeper than ${r.limits.depthMax}`);
  const c = r.u8();
  if (c <= 0x7f) return c;
  if (c >= 0xe0) return c - 0x100;
  if (c >= 0x80 && c <= 0x8f) return readMap(r, c & 0x0f, depth);
  if (c >= 0x90 && c <= 0x9f) return readArray(r, c & 0x0f, depth);
  if (c >= 0xa0 && c <= 0xbf) return readText(r, c & 0x1f);
  switch (c) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return readBytes(r, Number(r.uint(1)));
    case 0xc5: return readBytes(r, Number(r.uint(2)));
    case 0xc6: return readBytes(r, Number(r.uint(4)));
    case 0xcc: return integer(r.uint(1));
    case 0xcd: return integer(r.uint(2));
    case 0xce: return integer(r.uint(4));
    case 0xcf: return integer(r.uint(8));
    case 0xd0: return integer(BigInt.asIntN(8, r.uint(1)));
    case 0xd1: return integer(BigInt.asIntN(16, r.uint(2)));
    case 0xd2: return integer(BigInt.asIntN(32, r.uint(4)));
    case 0xd3: return integer(BigInt.asIntN(64, r.uint(8)));
    case 0xd9: return readText(r, Number(r.uint(1)));
    case 0xda: return readText(r, Number(r.uint(2)));
    case 0xdb: return readText(r, Number(r.uint(4)));
    case 0xdc: return readArray(r, Number(r.uint(2)), depth);
    case 0xdd: return readArray(r, Number(r.uint(4)), depth);
    case 0xde: return readMap(r, Number(r.uint(2)), depth);
    case 0xdf: return readMap(r, Number(r.uint(4)), depth);
    case 0xca: case 0xcb: throw new DecodeError("floats are not allowed");
    case 0xc1: throw new DecodeError("the byte 0xc1 is never used");
    default: throw new DecodeError(`extension types are not allowed (0x${c.toString(16)})`);
  }
}

/** Decode canonical msgpack bytes; throws DecodeError on any second spelling. */
export function decode(bytes, limits = LIMITS) {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError("input must be bytes");
  if (bytes.length > limits.inputBytesMax) throw new DecodeError(`input larger than ${limits.inputBytesMax} bytes`);
  const r = new Reader(bytes, limits);
  const value = readValue(r, 0);
  if (r.at !== bytes.length) throw new DecodeError("trailing bytes after the value");
  if (!bytesEqual(encode(value), bytes)) throw new DecodeError("not the canonical spelling of its value");
  return value;
}

export function hex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

export function unhex(text) {
  if (typeof text !== "string" || text.length % 2 !== 0 || !/^[0-9a-f]*$/.test(text)) {
    throw new DecodeError("must be lowercase hex with an even number of digits");
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}
