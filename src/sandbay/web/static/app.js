// The dashboard's shared helpers: calls to the native API with the session cookie
// (and the session's CSRF token on every change), a confirmation dialog, a wait
// indicator, copy buttons. No framework: each page's script uses these.
"use strict";
const CSRF = document.querySelector('meta[name="csrf-token"]').content;

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body, options = {}) {
  const headers = { "X-CSRF-Token": CSRF };
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 401) { window.location.href = "/login"; throw new ApiError(401, "signed out"); }
  if (!response.ok) {
    let message = response.statusText;
    try { const data = await response.json(); message = (data.error && data.error.message) || JSON.stringify(data); } catch (e) { /* not JSON */ }
    throw new ApiError(response.status, message);
  }
  if (options.raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

const statusBar = document.getElementById("status");
let statusTimer = null;
function say(text, { busy = false, error = false } = {}) {
  clearTimeout(statusTimer);
  statusBar.textContent = text;
  statusBar.classList.toggle("busy", busy);
  statusBar.style.background = error ? "#b3261e" : "";
  if (!busy) statusTimer = setTimeout(() => { statusBar.textContent = ""; }, error ? 8000 : 3000);
}

// Run `work` with a wait indicator on `button` and the status bar; report its error.
async function waiting(button, label, work) {
  if (button) button.disabled = true;
  say(label + "…", { busy: true });
  try {
    const result = await work();
    say(label + ": done");
    return result;
  } catch (error) {
    say(label + " failed: " + error.message, { error: true });
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("confirm-ok").focus();
  });
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function copyText(text) {
  try { await navigator.clipboard.writeText(text); say("Copied"); }
  catch (e) { say("Copy failed: select the text and copy it", { error: true }); }
}

// A secret shown once, with a copy button.
function secretBox(title, fields) {
  const box = el("div", { class: "secret" }, el("strong", { text: title + " (shown once)" }));
  const list = el("dl", { class: "kv" });
  for (const [name, value] of fields) {
    const code = el("code", { text: String(value) });
    list.append(el("dt", { text: name }), el("dd", {}, code, " ", el("button", { type: "button", class: "copy", onclick: () => copyText(String(value)) }, "Copy " + name)));
  }
  box.append(list);
  return box;
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-copy]");
  if (target) copyText(document.querySelector(target.dataset.copy).textContent);
});

function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }

// Lifecycle actions, shared by the list and the environment page.
const BUSY = new Set(["creating", "starting", "pausing", "resuming", "stopping", "archiving", "restoring", "deleting"]);
// [label, path suffix, body, confirmation] per action.
const ACTIONS = {
  start: ["Start", "/start", undefined, null],
  stop: ["Stop", "/stop", {}, "Stop it gracefully (SIGTERM, then a kill after 10 s)?"],
  force: ["Force stop", "/stop", { force: true }, "Kill it at once?"],
  restart: ["Restart", "/restart", undefined, "Restart it?"],
  pause: ["Pause", "/pause", undefined, null],
  resume: ["Resume", "/resume", undefined, null],
  archive: ["Archive", "/archive", undefined, "Archive it (stopped, its files moved to the archive)?"],
  delete: ["Delete", "", undefined, "Delete it with its files? This cannot be undone."],
};

function actionsFor(state) {
  switch (state) {
    case "running": return ["stop", "force", "restart", "pause", "archive", "delete"];
    case "paused": return ["resume", "stop", "force", "delete"];
    case "stopped": return ["start", "archive", "delete"];
    case "archived": return ["start", "delete"];
    case "error": return ["start", "force", "delete"];
    default: return ["delete"];
  }
}

async function act(env, name, button) {
  const [label, suffix, body, question] = ACTIONS[name];
  if (question && !(await confirmAction(`${label} ${env.name}: ${question}`))) return;
  const method = name === "delete" ? "DELETE" : "POST";
  await waiting(button, `${label} ${env.name}`, () => api(method, `/v1/environments/${env.id}${suffix}`, body));
}

function stateBadge(state) {
  return el("span", { class: "state " + state + (BUSY.has(state) ? " busy" : ""), text: state });
}

function renderActions(cell, env) {
  cell.replaceChildren(...actionsFor(env.state).map((name) => {
    const button = el("button", { type: "button", "data-action": name, class: name === "delete" || name === "force" ? "danger" : "" }, ACTIONS[name][0]);
    button.setAttribute("aria-label", `${ACTIONS[name][0]} ${env.name}`);
    button.addEventListener("click", () => act(env, name, button));
    return button;
  }));
}


// Lists typed by hand: one item a line or comma-separated, blanks dropped.
function splitList(text) {
  return String(text || "").split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);
}

// `VAR=name` lines (or comma-separated) as {VAR: name}; a line without `=` is an error.
function parseVars(text) {
  const vars = {};
  for (const pair of splitList(text)) {
    const i = pair.indexOf("=");
    if (i <= 0) throw new Error(`"${pair}" is not VARIABLE=secret-name`);
    vars[pair.slice(0, i).trim()] = pair.slice(i + 1).trim();
  }
  return vars;
}

function formatVars(vars) {
  return Object.entries(vars || {}).map(([k, v]) => `${k}=${v}`).join("\n");
}
