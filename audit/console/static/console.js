// The console's page script: sign-in, the bearer token in this tab's sessionStorage, fetching each
// page's data fragment with it, downloads, and the public key kept in localStorage. No inline script
// anywhere (the CSP forbids it); the token never goes into a URL.
const TOKEN = "policyengine.token";
const PUBLIC_KEY = "policyengine.publicKey";
const LOGIN = "/console/login";

function token() {
  return sessionStorage.getItem(TOKEN);
}

function toLogin(reason) {
  if (reason === "refused") sessionStorage.removeItem(TOKEN);
  const next = location.pathname + location.search;
  const query = new URLSearchParams({ next });
  if (reason) query.set("reason", reason);
  location.replace(`${LOGIN}?${query}`);
}

function safeNext(raw) {
  // Only a path of this console: no other origin, no scheme, no protocol-relative URL.
  return raw && /^\/console\/[A-Za-z0-9/_.\-?=&%+*:]*$/.test(raw) && !raw.startsWith("//") ? raw : "/console/decisions";
}

async function authorized(url) {
  return fetch(url, { headers: { Authorization: `Bearer ${token()}` }, credentials: "omit", cache: "no-store" });
}

function setupLogin() {
  const form = document.getElementById("login-form");
  const message = document.getElementById("login-message");
  const params = new URLSearchParams(location.search);
  const reasons = { refused: "The token was refused. Sign in again.", signedout: "Signed out." };
  if (reasons[params.get("reason")]) {
    message.textContent = reasons[params.get("reason")];
    message.hidden = false;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = document.getElementById("token").value.trim();
    sessionStorage.setItem(TOKEN, value);
    const response = await authorized("/console/data/session");
    if (response.status === 204) {
      location.assign(safeNext(params.get("next")));
      return;
    }
    sessionStorage.removeItem(TOKEN);
    message.textContent = response.status === 401 ? "The token was refused." : `The server answered ${response.status}.`;
    message.hidden = false;
  });
}

function setupKey() {
  const area = document.getElementById("public-key");
  const status = document.getElementById("key-status");
  area.value = localStorage.getItem(PUBLIC_KEY) || "";
  document.getElementById("key-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) area.value = (await file.text()).trim();
  });
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = area.value.trim();
    if (!text) {
      status.textContent = "Paste or load a key first.";
      return;
    }
    localStorage.setItem(PUBLIC_KEY, text);
    status.textContent = "Key saved in this browser.";
  });
  document.getElementById("key-clear").addEventListener("click", () => {
    localStorage.removeItem(PUBLIC_KEY);
    area.value = "";
    status.textContent = "Key forgotten.";
  });
}

async function download(button) {
  const status = document.getElementById("download-status");
  status.textContent = "Preparing the download…";
  const response = await authorized(button.dataset.download);
  if (response.status === 401) return toLogin("refused");
  if (!response.ok) {
    status.textContent = `The download failed: ${response.status} ${await response.text()}`;
    return;
  }
  const blob = await response.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = button.dataset.filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  const complete = response.headers.get("X-Policyengine-Complete") === "true";
  status.textContent = complete
    ? "Downloaded every matching decision."
    : `Downloaded the newest matches down to entry ${response.headers.get("X-Policyengine-Examined-From")}; narrow the filter (or use policyengine audit query) for the rest.`;
}

async function loadData() {
  const holder = document.getElementById("data");
  if (!holder) return;
  const response = await authorized(holder.dataset.source);
  if (response.status === 401) return toLogin("refused");
  const body = await response.text();
  if (response.status === 429 || response.status === 503) {
    holder.replaceChildren(Object.assign(document.createElement("p"), {
      className: "error", role: "alert",
      textContent: `The server is busy (${response.status}); retry in ${response.headers.get("Retry-After") || "a few"} s.`,
    }));
  } else if (response.headers.get("Content-Type")?.startsWith("text/html")) {
    holder.innerHTML = body; // rendered and escaped by the server; the CSP runs no script in it
  } else {
    holder.textContent = `Unexpected answer ${response.status}.`;
  }
  holder.setAttribute("aria-busy", "false");
  holder.dataset.loaded = String(response.status);
  for (const button of holder.querySelectorAll("button[data-download]")) {
    button.addEventListener("click", () => download(button));
  }
}

function main() {
  const page = document.body.dataset.page;
  if (page === "login") return setupLogin();
  if (!token()) return toLogin();
  document.getElementById("sign-out")?.addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN);
    location.assign(`${LOGIN}?reason=signedout`);
  });
  if (page === "key") return setupKey();
  loadData();
}

main();
