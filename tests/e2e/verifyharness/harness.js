// Test harness: exposes the verification library to the browser tests, which call runCase(kind, data)
// and get {ok: true, ...} or {ok: false, code, message} back (never a thrown error).
import * as v from "/console/static/verify.js";

const bytes = (text) => new TextEncoder().encode(text);
const b64 = (text) => (text === null || text === undefined ? null : v.b64decode(text, "vector", "vector value"));
const proofList = (list) => (list === null ? null : list.map((h) => v.b64decode(h, "vector", "proof hash")));

const cases = {
  async inclusion(c) {
    await v.verifyInclusion(c.leafIdx, c.treeSize, b64(c.leafHash), proofList(c.proof), b64(c.root));
    return {};
  },
  async consistency(c) {
    await v.verifyConsistency(c.size1, c.size2, b64(c.root1), b64(c.root2), proofList(c.proof));
    return {};
  },
  async hashes(c) {
    return {
      leaves: await Promise.all(c.leaves.map(async (h) => v.hex(await v.leafHash(hexBytes(h))))),
      node: v.hex(await v.nodeHash(hexBytes(c.left), hexBytes(c.right))),
    };
  },
  async proof(c) {
    const key = await v.parseVerifierKey(c.key);
    const out = await v.verifyProof(c.text, key, c.entry === undefined ? null : bytes(c.entry));
    return {
      index: String(out.index),
      size: String(out.checkpoint.size),
      signer: out.checkpoint.signer,
      entry: new TextDecoder().decode(out.entry),
    };
  },
  async checkpoint(c) {
    const cp = await v.openCheckpoint(c.note, await v.parseVerifierKey(c.key));
    return { size: String(cp.size), signer: cp.signer, origin: cp.origin };
  },
  async extends(c) {
    const key = await v.parseVerifierKey(c.key);
    const older = await v.openCheckpoint(c.older, key);
    const newer = await v.openCheckpoint(c.newer, key);
    await v.verifyCheckpointConsistency(older, newer, c.proof);
    return {};
  },
  async key(c) {
    const key = await v.parseVerifierKey(c.key);
    return { name: key.name };
  },
};

function hexBytes(h) {
  return Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
}

async function runOne(kind, data) {
  try {
    return { ok: true, ...(await cases[kind](data)) };
  } catch (err) {
    return { ok: false, code: err.code ?? "threw", message: String(err.message ?? err) };
  }
}

window.runCases = (kind, list) => Promise.all(list.map((data) => runOne(kind, data)));
document.body.dataset.ready = "1";
