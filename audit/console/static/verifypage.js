// The console's in-browser verification: on the decision page, proves the shown entry is in the
// signed log (#verification); on the log page, proves the log's current checkpoint extends the one
// this browser saw last (#consistency). The token comes from sessionStorage, the auditor's key from
// localStorage; the server is trusted for nothing but bytes, and every response is size-bounded.

import {
  VerifyError,
  leafHash,
  openCheckpoint,
  parseDecimal,
  parseProof,
  parseVerifierKey,
  requireWebCrypto,
  verifyCheckpointConsistency,
  verifyInclusion,
  MAX_NOTE_CHARS,
  MAX_PROOF_CHARS,
} from "./verify.js";

export const TOKEN_KEY = "policyengine.token";
export const PUBLIC_KEY_KEY = "policyengine.publicKey";
export const LAST_CHECKPOINT_KEY = "policyengine.lastCheckpoint";
const MAX_JSON_CHARS = 64 << 10;
const NOT_YET_SIGNED_RETRIES = 3; // an entry appended a moment ago is in the next checkpoint
const BUSY_RETRIES = 4; // the API answers 503 "busy" when other queries hold its slots
const RETRY_DELAY_MS = 700;

/** Why a step failed, for the status line: `${step}: ${message}`, with the error's code. */
class StepError extends Error {
  constructor(step, err) {
    super(`${step}: ${err.message}`);
    this.code = err.code ?? "error";
  }
}

async function step(name, work) {
  try {
    return await work();
  } catch (err) {
    throw err instanceof StepError ? err : new StepError(name, err);
  }
}

function show(status, state, text, { code = null, size = null, signer = null } = {}) {
  status.dataset.state = state;
  status.textContent = text;
  for (const [attr, value] of [["code", code], ["checkpointSize", size], ["signer", signer]]) {
    if (value === null) delete status.dataset[attr];
    else status.dataset[attr] = String(value);
  }
}

async function readBounded(response, limit) {
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > limit) throw new VerifyError("response_too_large", `the answer is over ${limit} bytes`);
  const reader = response.body.getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel();
      throw new VerifyError("response_too_large", `the answer is over ${limit} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new VerifyError("proof_format", "the answer is not UTF-8");
  }
}

/** The page's data-api: '' or a same-origin path, so the token never leaves for another host. */
function apiBase(section) {
  const base = section.dataset.api ?? "";
  if (base !== "" && !/^\/(?!\/)[A-Za-z0-9._~\/-]*$/.test(base)) {
    const err = new VerifyError("bad_api_base", `data-api ${JSON.stringify(base.slice(0, 80))} is not a path on this site`);
    throw new StepError("The page is misconfigured", err);
  }
  return base.replace(/\/$/, "");
}

/** GET an API path with the bearer token, waiting out a busy API a few times. */
async function apiGet(base, path, token, limit) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await apiGetOnce(base, path, token, limit);
    } catch (err) {
      if (err.code !== "busy" || attempt >= BUSY_RETRIES) throw err;
      await sleep(RETRY_DELAY_MS);
    }
  }
}

/** One GET: the body as text, or a VerifyError naming the status and the API's own error code. */
async function apiGetOnce(base, path, token, limit) {
  let response;
  try {
    response = await fetch(base + path, {
      headers: { Authorization: `Bearer ${token}` },
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
  } catch (err) {
    throw new VerifyError("api_unreachable", `the API did not answer ${path} (${err.message})`);
  }
  const body = await readBounded(response, limit);
  if (response.ok) return body;
  let detail = "";
  let code = `http_${response.status}`;
  try {
    const parsed = JSON.parse(body);
    detail = typeof parsed.error === "string" ? `: ${parsed.error.slice(0, 300)}` : "";
    if (typeof parsed.code === "string" && /^[a-z_]{1,40}$/.test(parsed.code)) code = parsed.code;
  } catch {
    // not JSON: the status says enough
  }
  if (response.status === 401) code = "unauthorized";
  throw new VerifyError(code, `the API answered ${response.status} to ${path.split("?")[0]}${detail}`);
}

/** The token and the parsed key, or a StepError saying which is missing. */
async function credentials() {
  await step("Verification cannot run here", async () => requireWebCrypto());
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    throw new StepError("Not signed in", new VerifyError("no_token", "no API token in this browser session"));
  }
  const keyText = localStorage.getItem(PUBLIC_KEY_KEY);
  if (!keyText) {
    throw new StepError(
      "No public key",
      new VerifyError("no_key", "load the log's audit.vkey or audit.pub on the key page first"),
    );
  }
  const verifier = await step("The public key stored in this browser is not usable", () =>
    parseVerifierKey(keyText),
  );
  return { token, verifier };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function fetchProof(base, index, token) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await apiGet(base, `/v1/proof/inclusion?index=${index}`, token, MAX_PROOF_CHARS);
    } catch (err) {
      if (err.code !== "index_out_of_range" || attempt >= NOT_YET_SIGNED_RETRIES) throw err;
      await sleep(RETRY_DELAY_MS);
    }
  }
}

/** Entry `data-index` of #verification is in the log: its proof leads to a checkpoint the key signed. */
export async function verifyEntry(section) {
  const base = apiBase(section);
  const index = await step("The page names no entry", () =>
    parseDecimal(section.dataset.index ?? "", "proof_format", "data-index"),
  );
  const { token, verifier } = await credentials();
  const text = await step("Fetching the inclusion proof failed", () => fetchProof(base, index, token));
  const proof = await step("The inclusion proof is malformed", () => parseProof(text));
  if (proof.index !== index) {
    const err = new VerifyError("index_mismatch", `the API proved entry ${proof.index}, not entry ${index}`);
    throw new StepError("The inclusion proof is for another entry", err);
  }
  if (proof.extra === null) {
    throw new StepError("The inclusion proof is malformed", new VerifyError("proof_no_entry", "it carries no entry"));
  }
  const checkpoint = await step("The checkpoint signature check failed", () =>
    openCheckpoint(proof.note, verifier),
  );
  await step(`Entry ${index} is not in checkpoint ${checkpoint.size}`, async () =>
    verifyInclusion(index, checkpoint.size, await leafHash(proof.extra), proof.hashes, checkpoint.root),
  );
  section.dispatchEvent(
    new CustomEvent("policyengine:verified", { detail: { index, entry: proof.extra, checkpoint } }),
  );
  return checkpoint;
}

/** The log's current checkpoint extends the one this browser kept; then it is kept instead. */
export async function checkConsistency(section) {
  const base = apiBase(section);
  const { token, verifier } = await credentials();
  const note = await step("Fetching the current checkpoint failed", () =>
    apiGet(base, "/v1/checkpoint", token, MAX_NOTE_CHARS),
  );
  const current = await step("The current checkpoint does not verify", () => openCheckpoint(note, verifier));
  const kept = localStorage.getItem(LAST_CHECKPOINT_KEY);
  if (!kept) {
    localStorage.setItem(LAST_CHECKPOINT_KEY, note);
    return { current, previous: null };
  }
  const previous = await step("The checkpoint this browser kept does not verify with the loaded key", () =>
    openCheckpoint(kept, verifier),
  );
  if (previous.size > current.size) {
    const err = new VerifyError(
      "log_shrank",
      `checkpoint ${current.size} is smaller than checkpoint ${previous.size} seen before`,
    );
    throw new StepError("The log shrank", err);
  }
  let proof = [];
  if (previous.size !== current.size && previous.size !== 0n) {
    const body = await step("Fetching the consistency proof failed", () =>
      apiGet(base, `/v1/proof/consistency?from=${previous.size}&to=${current.size}`, token, MAX_JSON_CHARS),
    );
    proof = await step("The consistency proof is malformed", async () => {
      const parsed = JSON.parse(body);
      if (String(parsed.size1) !== String(previous.size) || String(parsed.size2) !== String(current.size)) {
        throw new VerifyError("proof_format", "it is for other sizes than asked");
      }
      return parsed.proof;
    });
  }
  await step(`Checkpoint ${current.size} does not extend checkpoint ${previous.size} seen before`, () =>
    verifyCheckpointConsistency(previous, current, proof),
  );
  localStorage.setItem(LAST_CHECKPOINT_KEY, note);
  return { current, previous };
}

async function runVerification(section) {
  const status = section.querySelector("#verification-status");
  if (!status) return;
  show(status, "running", "Verifying in this browser…");
  try {
    const checkpoint = await verifyEntry(section);
    show(status, "ok", `Included in checkpoint ${checkpoint.size} signed by ${checkpoint.signer}`, {
      size: checkpoint.size,
      signer: checkpoint.signer,
    });
  } catch (err) {
    show(status, "failed", `Verification failed. ${err.message}`, { code: err.code ?? "error" });
  }
}

async function runConsistency(section) {
  const status = section.querySelector("#consistency-status");
  if (!status) return;
  show(status, "running", "Checking consistency in this browser…");
  try {
    const { current, previous } = await checkConsistency(section);
    const text =
      previous === null
        ? `Checkpoint ${current.size} signed by ${current.signer} verified; kept in this browser for the next check`
        : `Checkpoint ${current.size} signed by ${current.signer} is consistent with checkpoint ${previous.size} seen before`;
    show(status, "ok", text, { size: current.size, signer: current.signer });
  } catch (err) {
    show(status, "failed", `Consistency check failed. ${err.message}`, { code: err.code ?? "error" });
  }
}

const verification = document.getElementById("verification");
if (verification) runVerification(verification);
const consistency = document.getElementById("consistency");
if (consistency) runConsistency(consistency);
