// Client-side checks of the signed audit log, with no dependency beyond the browser's WebCrypto:
// RFC 6962 / RFC 9162 Merkle hashing and proofs, C2SP signed notes and checkpoints with Ed25519,
// and the C2SP tlog-proof text that /v1/proof/inclusion returns. It follows audit/merkle.py,
// audit/note.py, audit/checkpoint.py and audit/proof.py rule for rule, with the same error codes.

const HASH_SIZE = 32;
const MAX_PROOF_HASHES = 64; // a tree of at most 2^63 leaves needs no more
const MAX_SIGNATURES = 100; // as audit/note.py
export const MAX_NOTE_CHARS = 1 << 20; // a checkpoint is ~150 characters; anything near this is hostile
export const MAX_PROOF_CHARS = 16 << 20; // the proof carries the entry: bounded like any response
const MAX_SIZE = (1n << 63n) - 1n; // what the stores' integer columns hold
const DASH = "\u2014 ";
const ALG_ED25519 = 0x01;
const PROOF_HEADER = "c2sp.org/tlog-proof@v1";
const SPKI_ED25519_PREFIX = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/** A check that did not pass: `code` is one of audit/errors.py's codes, `message` says what failed. */
export class VerifyError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "VerifyError";
    this.code = code;
  }
}

const fail = (code, message) => {
  throw new VerifyError(code, message);
};

// Encodings

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict standard base64 (padding required, no whitespace), as Python's b64decode(validate=True). */
export function b64decode(text, code = "proof_format", what = "value") {
  if (typeof text !== "string" || !B64.test(text)) fail(code, `${what} is not base64`);
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

export function b64encode(bytes) {
  let raw = "";
  for (const b of bytes) raw += String.fromCharCode(b);
  return btoa(raw);
}

export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

const utf8 = (text) => new TextEncoder().encode(text);

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** A decimal without sign or leading zero, at most 2^63-1, as a BigInt. */
export function parseDecimal(text, code, what) {
  if (typeof text !== "string" || !/^(0|[1-9][0-9]{0,18})$/.test(text)) {
    fail(code, `${what} ${JSON.stringify(String(text).slice(0, 40))} is not a decimal`);
  }
  const value = BigInt(text);
  if (value > MAX_SIZE) fail(code, `${what} ${text} is out of range`);
  return value;
}

/** An index or size given as a BigInt or a safe integer Number (a JSON 2^64-1 is not one). */
function toBig(value, code, what) {
  if (typeof value === "bigint" && value >= 0n && value <= MAX_SIZE) return value;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  fail(code, `${what} ${String(value)} is not an integer in range`);
}

// RFC 6962 hashing

async function sha256(...parts) {
  requireWebCrypto();
  const total = parts.reduce((n, p) => n + p.length, 0);
  const buf = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    buf.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", buf));
}

export const leafHash = (data) => sha256(Uint8Array.of(0), data);
export const nodeHash = (left, right) => sha256(Uint8Array.of(1), left, right);

function checkHashes(proof) {
  const hashes = Array.from(proof ?? []);
  if (hashes.length > MAX_PROOF_HASHES) fail("proof_length", "proof has too many hashes");
  for (const h of hashes) {
    if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
      fail("hash_size", "every proof hash must be 32 bytes");
    }
  }
  return hashes;
}

/** The root an inclusion proof implies (RFC 9162 §2.1.3.2). */
export async function rootFromInclusion(index, size, leaf, proof) {
  const i = toBig(index, "index_out_of_range", "index");
  const n = toBig(size, "index_out_of_range", "tree size");
  if (i >= n) fail("index_out_of_range", `index ${i} is outside a tree of size ${n}`);
  if (!(leaf instanceof Uint8Array) || leaf.length !== HASH_SIZE) {
    fail("hash_size", "a leaf hash must be 32 bytes");
  }
  let fn = i;
  let sn = n - 1n;
  let r = leaf;
  for (const p of checkHashes(proof)) {
    if (sn === 0n) fail("proof_length", "inclusion proof is too long");
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail("proof_length", "inclusion proof is too short");
  return r;
}

/** Throws VerifyError unless `proof` shows `leaf` at `index` in the tree `root` of `size`. */
export async function verifyInclusion(index, size, leaf, proof, root) {
  const got = await rootFromInclusion(index, size, leaf, proof);
  if (!equalBytes(got, root)) fail("root_mismatch", "inclusion proof does not lead to the root");
}

/** Throws VerifyError unless `proof` shows tree (size1, root1) is a prefix of (size2, root2)
 * (RFC 9162 §2.1.4.2; a proof from size 0 always fails, equal sizes need an empty proof). */
export async function verifyConsistency(size1, size2, root1, root2, proof) {
  const path = checkHashes(proof);
  const m = toBig(size1, "size_out_of_range", "size1");
  const n = toBig(size2, "size_out_of_range", "size2");
  if (m <= 0n || n < m) fail("size_out_of_range", `no consistency proof from ${m} to ${n}`);
  if (m === n) {
    if (path.length) fail("proof_length", "equal sizes need an empty proof");
    if (!equalBytes(root1, root2)) fail("root_mismatch", "equal sizes with different roots");
    return;
  }
  if (!path.length) fail("proof_length", "empty consistency proof");
  if ((m & (m - 1n)) === 0n) path.unshift(root1);
  let fn = m - 1n;
  let sn = n - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) fail("proof_length", "consistency proof is too long");
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail("proof_length", "consistency proof is too short");
  if (!equalBytes(fr, root1) || !equalBytes(sr, root2)) {
    fail("root_mismatch", "consistency proof does not lead to the roots");
  }
}

// Keys

/** SHA-256(name || 0x0A || 0x01 || public key)[:4], as c2sp.org/signed-note recommends. */
export async function keyId(name, raw) {
  return (await sha256(utf8(name), Uint8Array.of(0x0a, ALG_ED25519), raw)).slice(0, 4);
}

function checkName(name) {
  if (!name || /[\s+]/u.test(name)) {
    fail("key_name", `key name ${JSON.stringify(name)} must be non-empty, without spaces or '+'`);
  }
  return name;
}

/** Throws unless this page has WebCrypto: browsers offer it only to secure contexts (HTTPS, localhost). */
export function requireWebCrypto() {
  if (!globalThis.isSecureContext || !globalThis.crypto?.subtle) {
    fail("no_webcrypto", "this page is not a secure context (HTTPS), so the browser offers no WebCrypto");
  }
}

async function importRaw(raw) {
  requireWebCrypto();
  try {
    return await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
  } catch (err) {
    if (err.name === "NotSupportedError") {
      fail("no_ed25519", "this browser's WebCrypto has no Ed25519 (Chromium 137+, Firefox 129+, Safari 17+ do)");
    }
    fail("vkey_invalid", `the browser refused the Ed25519 key: ${err.message}`);
  }
}

function pemBody(text) {
  const m = /^-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n?-----END PUBLIC KEY-----\s*$/.exec(text);
  if (!m) fail("vkey_invalid", "a PEM public key is -----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----");
  const der = b64decode(m[1].replace(/\r?\n/g, ""), "vkey_invalid", "the PEM body");
  const prefixOk = SPKI_ED25519_PREFIX.every((b, i) => der[i] === b);
  if (der.length !== 44 || !prefixOk) fail("vkey_invalid", "the PEM key is not an Ed25519 public key");
  return der.slice(12);
}

/**
 * The auditor's key from the text of audit.vkey (`name+keyid+base64(0x01||key)`) or audit.pub (an
 * SPKI PEM). A PEM key carries no name: its `name` is null and each checkpoint's origin names it, so
 * the signature line must still match that name and the key id derived from it.
 */
export async function parseVerifierKey(text) {
  if (typeof text !== "string" || text.length > 4096) fail("vkey_invalid", "no public key text");
  const trimmed = text.trim();
  if (trimmed.startsWith("-----BEGIN")) {
    const raw = pemBody(trimmed);
    return { name: null, raw, key: await importRaw(raw) };
  }
  const parts = trimmed.split("+");
  if (parts.length < 3) fail("vkey_invalid", "a verifier key is name+keyid+base64");
  const [name, hexid] = parts;
  const blob = parts.slice(2).join("+");
  if (!/^[0-9a-f]{8}$/i.test(hexid)) fail("vkey_invalid", "verifier key id is not 8 hex digits");
  const raw = b64decode(blob, "vkey_invalid", "the verifier key");
  if (raw.length !== 33 || raw[0] !== ALG_ED25519) fail("vkey_invalid", "verifier key is not an Ed25519 key");
  const key32 = raw.slice(1);
  checkName(name);
  if (hex(await keyId(name, key32)) !== hexid.toLowerCase()) {
    fail("vkey_invalid", "verifier key id does not match its key");
  }
  return { name, raw: key32, key: await importRaw(key32) };
}

/** How a key is named to the auditor: `name+keyid` (the start of its vkey). */
export async function describeSigner(verifier, name) {
  const who = verifier.name ?? name;
  return `${who}+${hex(await keyId(who, verifier.raw))}`;
}

// Signed notes and checkpoints

/** The note's text and its signature lines [{name, keyId, signature}]; mirrors audit.note.split_note. */
export function splitNote(note) {
  if (typeof note !== "string" || note.length > MAX_NOTE_CHARS) fail("note_invalid", "the note is too long");
  // biome-ignore lint: control characters are what this rejects
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) fail("note_invalid", "a note must not hold control characters");
  const cut = note.lastIndexOf("\n\n");
  if (cut < 0 || !note.endsWith("\n")) fail("note_invalid", "a note is text, a blank line, and signature lines");
  const text = note.slice(0, cut + 1);
  const lines = note.slice(cut + 2, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) fail("note_invalid", "too many signatures");
  const signatures = lines.map((line) => {
    if (!line.startsWith(DASH)) fail("note_invalid", `malformed signature line ${JSON.stringify(line.slice(0, 80))}`);
    const rest = line.slice(DASH.length);
    const space = rest.indexOf(" ");
    const name = space < 0 ? rest : rest.slice(0, space);
    const blob = space < 0 ? "" : rest.slice(space + 1);
    const raw = b64decode(blob, "note_invalid", `the signature of ${name}`);
    if (!name || raw.length < 5) fail("note_invalid", `malformed signature line ${JSON.stringify(line.slice(0, 80))}`);
    return { name, keyId: raw.slice(0, 4), signature: raw.slice(4) };
  });
  return { text, signatures };
}

/** A checkpoint body: origin, size and root lines (extension lines allowed). */
export function parseCheckpoint(text) {
  const lines = text.split("\n");
  if (lines.length < 4 || lines[lines.length - 1] !== "" || lines.slice(0, -1).some((l) => !l)) {
    fail("checkpoint_invalid", "a checkpoint is origin, size and root on non-empty lines");
  }
  const size = parseDecimal(lines[1], "checkpoint_invalid", "checkpoint size");
  const root = b64decode(lines[2], "checkpoint_invalid", "checkpoint root");
  if (root.length !== HASH_SIZE) fail("checkpoint_invalid", "checkpoint root is not a SHA-256 hash");
  return { origin: lines[0], size, root };
}

/**
 * Verify a checkpoint note against the auditor's key and parse it: returns {origin, size, root,
 * signer}. The key's name must be the origin (a PEM key takes the origin as its name).
 */
export async function openCheckpoint(note, verifier) {
  const { text, signatures } = splitNote(note);
  const origin = text.slice(0, text.indexOf("\n"));
  const name = verifier.name ?? origin;
  const kid = await keyId(name, verifier.raw);
  const bytes = utf8(text);
  let verified = false;
  for (const sig of signatures) {
    if (sig.name !== name || !equalBytes(sig.keyId, kid)) continue;
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, verifier.key, sig.signature, bytes);
    if (!ok) fail("signature_invalid", `the signature by ${name} does not verify`);
    verified = true;
  }
  if (!verified) {
    const names = signatures.map((s) => `${s.name}+${hex(s.keyId)}`).join(", ");
    fail("signature_unknown_key", `no signature from the key ${name}+${hex(kid)} (signed by ${names})`);
  }
  const checkpoint = parseCheckpoint(text);
  if (checkpoint.origin !== name) {
    fail("origin_mismatch", `checkpoint origin ${JSON.stringify(checkpoint.origin)} is not ${JSON.stringify(name)}`);
  }
  return { ...checkpoint, signer: `${name}+${hex(kid)}` };
}

// tlog-proof texts

/** Parse a c2sp.org/tlog-proof@v1 text: {index, hashes, note, extra}; mirrors audit.proof. */
export function parseProof(text) {
  if (typeof text !== "string" || text.length > MAX_PROOF_CHARS) fail("proof_format", "the proof is too long");
  const cut = text.indexOf("\n\n");
  if (cut < 0) fail("proof_format", "a tlog-proof needs a blank line before its checkpoint");
  const lines = text.slice(0, cut).split("\n");
  const note = text.slice(cut + 2);
  if (lines[0] !== PROOF_HEADER) fail("proof_format", `first line must be ${PROOF_HEADER}`);
  let pos = 1;
  let extra = null;
  if (pos < lines.length && lines[pos].startsWith("extra ")) {
    extra = b64decode(lines[pos].slice(6), "proof_format", "the extra line");
    pos += 1;
  }
  if (pos >= lines.length || !lines[pos].startsWith("index ")) fail("proof_format", "missing index line");
  const index = parseDecimal(lines[pos].slice(6), "proof_format", "index");
  const hashLines = lines.slice(pos + 1);
  if (hashLines.length > MAX_PROOF_HASHES) fail("proof_length", "proof has too many hashes");
  const hashes = hashLines.map((line) => b64decode(line, "proof_format", "a proof hash"));
  return { index, hashes, note, extra };
}

/**
 * Check a tlog-proof against the auditor's key: the checkpoint's signature, then the entry's leaf
 * (from `entry` or the proof's extra line) up to its root. Returns {index, entry, checkpoint}.
 */
export async function verifyProof(text, verifier, entry = null) {
  const proof = parseProof(text);
  const data = entry ?? proof.extra;
  if (data === null) fail("proof_no_entry", "no entry given and no extra line in the proof");
  const checkpoint = await openCheckpoint(proof.note, verifier);
  await verifyInclusion(proof.index, checkpoint.size, await leafHash(data), proof.hashes, checkpoint.root);
  return { index: proof.index, entry: data, checkpoint };
}

/** Check that `newer` extends `older` (both opened checkpoints) with a base64 hash list. */
export async function verifyCheckpointConsistency(older, newer, proofB64) {
  if (!Array.isArray(proofB64)) fail("proof_format", "the consistency proof is not a list");
  if (proofB64.length > MAX_PROOF_HASHES) fail("proof_length", "proof has too many hashes");
  const proof = proofB64.map((h) => b64decode(h, "proof_format", "a proof hash"));
  if (older.size === 0n) return; // the empty tree is a prefix of every tree
  await verifyConsistency(older.size, newer.size, older.root, newer.root, proof);
}
