// One environment: its object and actions, live events, followed logs, metrics
// charts, a terminal (xterm.js over the PTY WebSocket), files, preview links, SSH
// credentials, snapshots and forks, and its network policy (CIDRs, domain lists,
// secrets given to it) with the connections the policy refused.
"use strict";
const ENV = document.getElementById("env").dataset.env;
const BASE = `/v1/environments/${encodeURIComponent(ENV)}`;
let current = null;

// --- the object, its state and actions -------------------------------------
async function loadObject() {
  try { show(await api("GET", BASE)); } catch (error) { say("Loading failed: " + error.message, { error: true }); }
}

function show(env) {
  const was = current && current.state;
  current = env;
  document.getElementById("env-name").textContent = env.name;
  document.getElementById("env-id").textContent = env.id;
  document.getElementById("env-state").replaceWith(Object.assign(stateBadge(env.state), { id: "env-state" }));
  document.getElementById("object").textContent = JSON.stringify(env, null, 2);
  renderActions(document.getElementById("env-actions"), env);
  showNetwork(env);
  if (env.state === "running" && was !== "running") { terminal.connect(); logs.start(); listFiles(); }
  if (env.state === "deleted") window.location.href = "/";
}

// --- events ------------------------------------------------------------------
const eventList = document.getElementById("events");
let lastEvent = 0;
const refusals = document.getElementById("refusals");
const REFUSED = "environment.egress_refused";

// What the egress policy refused: the name asked for, the address and port, why.
function refusalText(event) {
  const d = event.data || {};
  const address = d.address ? `${d.address}${d.port ? ":" + d.port : ""}` : "";
  const target = [d.name || "(no name)", address].filter(Boolean).join(" at ");
  const skipped = d.suppressed ? ` (${d.suppressed} more not recorded)` : "";
  return `${d.kind || "connect"} refused: ${target}${event.reason ? " (" + event.reason + ")" : ""}${skipped}`;
}

function addEvent(event) {
  lastEvent = Math.max(lastEvent, event.id);
  if (event.type === REFUSED) {
    const text = `${when(event.created_at)} ${refusalText(event)}`;
    eventList.prepend(el("li", { class: "refused", text }));
    refusals.querySelector(".none")?.remove();
    refusals.prepend(el("li", { class: "refused", text }));
    while (refusals.children.length > 50) refusals.lastChild.remove();
    return;
  }
  const change = event.to_state ? ` ${event.from_state || "–"} → ${event.to_state}` : "";
  const text = `${when(event.created_at)} ${event.type}${change} by ${event.actor}${event.reason ? " (" + event.reason + ")" : ""}`;
  eventList.prepend(el("li", { text }));
}

async function followEvents() {
  const page = await api("GET", `${BASE}/events?limit=100`);
  page.data.forEach(addEvent);
  const source = new EventSource(`${BASE}/events?follow=true&after=${lastEvent}`);
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    addEvent(event);
    if (event.to_state) loadObject();
  };
}

// --- network: block-all, CIDRs, domain lists, secrets; one PATCH saves them ---
const netForm = document.getElementById("network");
const netError = document.getElementById("net-error");
const NET_LISTS = ["network_allow_list", "network_domain_allow_list", "network_domain_deny_list"];
let netEdited = false; // the form holds edits not saved yet: a state change must not wipe them

function showCodes(id, items, empty) {
  const node = document.getElementById(id);
  node.replaceChildren(...(items.length ? items.map((t) => el("code", { text: t })) : [el("span", { class: "muted", text: empty })]));
}

function showNetwork(env) {
  document.getElementById("net-block").textContent = env.network_block_all ? "yes: no outbound network" : "no";
  showCodes("net-cidrs", env.network_allow_list || [], "any");
  showCodes("net-allow", env.network_domain_allow_list || [], "any");
  showCodes("net-deny", env.network_domain_deny_list || [], "none");
  showCodes("net-secrets", Object.entries(env.secrets || {}).map(([v, name]) => `${v} → ${name}`), "none");
  if (!netEdited) fillNetwork(env);
}

function fillNetwork(env) {
  netForm.network_block_all.checked = Boolean(env.network_block_all);
  for (const key of NET_LISTS) netForm[key].value = (env[key] || []).join("\n");
  netForm.secrets.value = formatVars(env.secrets);
  netEdited = false;
  netError.textContent = "";
}

// Only what the form changes, so a PATCH never re-sends (and re-applies) the rest.
function networkChanges(env) {
  const body = {};
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  if (netForm.network_block_all.checked !== Boolean(env.network_block_all)) body.network_block_all = netForm.network_block_all.checked;
  for (const key of NET_LISTS) {
    const list = splitList(netForm[key].value);
    if (!same(list, env[key] || [])) body[key] = list;
  }
  const vars = parseVars(netForm.secrets.value);
  const sorted = (o) => Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (!same(sorted(vars), sorted(env.secrets || {}))) body.secrets = vars;
  return body;
}

netForm.addEventListener("input", () => { netEdited = true; });
document.getElementById("network-reset").addEventListener("click", () => { if (current) fillNetwork(current); });
netForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  netError.textContent = "";
  let body;
  try { body = networkChanges(current); } catch (error) { netError.textContent = error.message; return; }
  if (!Object.keys(body).length) { say("Network: nothing changed"); return; }
  const button = event.submitter || netForm.querySelector("button[type=submit]");
  button.disabled = true;
  say("Saving network…", { busy: true });
  try {
    const env = await api("PATCH", BASE, body);
    netEdited = false;
    show(env);
    say("Network saved");
  } catch (error) {
    netError.textContent = `Not saved: ${error.message}`;
    say("Saving network failed", { error: true });
  } finally {
    button.disabled = false;
  }
});

// --- logs (followed while the workload runs) ---------------------------------
const logs = {
  node: document.getElementById("logs"),
  running: false,
  async start() {
    if (this.running) return;
    this.running = true;
    this.node.textContent = "";
    try {
      const response = await api("GET", `${BASE}/logs?follow=true&tail=500`, undefined, { raw: true });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.node.append(value);
        this.node.scrollTop = this.node.scrollHeight;
      }
    } catch (error) {
      this.node.append(`\n[logs: ${error.message}]\n`);
    } finally {
      this.running = false;
    }
  },
};

// --- metrics: three SVG polylines, redrawn every few seconds -------------------
function draw(id, values) {
  const line = document.querySelector(`#${id} polyline`);
  const max = Math.max(1e-9, ...values);
  const step = values.length > 1 ? 300 / (values.length - 1) : 0;
  line.setAttribute("points", values.map((v, i) => `${(i * step).toFixed(1)},${(98 - (v / max) * 94).toFixed(1)}`).join(" "));
  line.parentNode.dataset.points = String(values.length);
}

async function loadMetrics() {
  if (document.hidden) return;
  let history;
  try { history = await api("GET", `${BASE}/metrics?limit=360`); } catch (error) { return; }
  const samples = history.data;
  if (!samples.length) return;
  const cpu = samples.map((s) => s.cpu_percent);
  const mem = samples.map((s) => s.memory_bytes / 1048576);
  const net = samples.map((s, i) => {
    if (i === 0) return 0;
    const prev = samples[i - 1];
    const seconds = (new Date(s.timestamp) - new Date(prev.timestamp)) / 1000 || 1;
    const bytes = s.network_rx_bytes + s.network_tx_bytes - prev.network_rx_bytes - prev.network_tx_bytes;
    return Math.max(0, bytes) / 1024 / seconds;
  });
  draw("chart-cpu", cpu); draw("chart-mem", mem); draw("chart-net", net);
  document.getElementById("m-cpu").textContent = cpu[cpu.length - 1].toFixed(1);
  document.getElementById("m-mem").textContent = mem[mem.length - 1].toFixed(1);
  document.getElementById("m-net").textContent = net[net.length - 1].toFixed(1);
}

// --- terminal: xterm.js over the PTY WebSocket; resizes, reattaches -----------
const terminal = {
  term: null, fit: null, socket: null, session: null, offset: 0, retry: 0,
  setup() {
    this.term = new Terminal({ cursorBlink: true, fontSize: 14, convertEol: false, screenReaderMode: true });
    this.fit = new FitAddon.FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(document.getElementById("terminal"));
    this.fit.fit();
    const encoder = new TextEncoder();
    this.term.onData((data) => { if (this.socket && this.socket.readyState === 1) this.socket.send(encoder.encode(data)); });
    this.term.onResize(({ cols, rows }) => { if (this.socket && this.socket.readyState === 1) this.socket.send(JSON.stringify({ type: "resize", cols, rows })); });
    window.addEventListener("resize", () => this.fit.fit());
  },
  status(text) { document.getElementById("term-status").textContent = text; },
  connect() {
    if (!this.term || (this.socket && this.socket.readyState <= 1)) return;
    if (!current || current.state !== "running") return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams({ cols: this.term.cols, rows: this.term.rows });
    if (this.session) { params.set("session", this.session); params.set("offset", this.offset); }
    const socket = new WebSocket(`${scheme}://${location.host}${BASE}/pty?${params}`);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.status("Connecting…");
    socket.onopen = () => { this.retry = 0; this.status("Connected"); };
    socket.onmessage = (message) => {
      if (typeof message.data === "string") {
        const control = JSON.parse(message.data);
        if (control.type === "session") { this.session = control.id; this.offset = control.offset; }
        if (control.type === "exit") { this.session = null; this.offset = 0; this.status(`Shell exited (${control.exit_code})`); }
        return;
      }
      const bytes = new Uint8Array(message.data);
      this.offset += bytes.length;
      this.term.write(bytes);
    };
    socket.onclose = (event) => {
      this.socket = null;
      if (event.code === 1000 && !this.session) { this.status("Closed: press Enter in the terminal area to open a new shell"); return; }
      this.status(`Disconnected (${event.code}${event.reason ? ": " + event.reason : ""}); reconnecting…`);
      this.retry = Math.min(this.retry + 1, 5);
      setTimeout(() => this.connect(), 500 * this.retry);
    };
  },
};

// --- files ---------------------------------------------------------------------
const filesBody = document.querySelector("#files tbody");
const pathInput = document.getElementById("files-path");
function join(dir, name) { return dir.replace(/\/+$/, "") + "/" + name; }

async function listFiles() {
  const dir = pathInput.value.trim() || "/workspace";
  let listing;
  try { listing = await api("GET", `${BASE}/files/list?path=${encodeURIComponent(dir)}`); }
  catch (error) { say("Listing files failed: " + error.message, { error: true }); return; }
  const rows = listing.data.map((file) => {
    const name = file.is_dir
      ? el("button", { type: "button", onclick: () => { pathInput.value = file.path; listFiles(); } }, file.name + "/")
      : el("a", { href: `${BASE}/files?path=${encodeURIComponent(file.path)}`, download: file.name }, file.name);
    const remove = el("button", { type: "button", class: "danger", "aria-label": `Delete ${file.name}` }, "Delete");
    remove.addEventListener("click", async () => {
      if (!(await confirmAction(`Delete ${file.path}${file.is_dir ? " and everything in it" : ""}?`))) return;
      await waiting(remove, `Deleting ${file.name}`, () => api("DELETE", `${BASE}/files?path=${encodeURIComponent(file.path)}&recursive=${file.is_dir}`));
      listFiles();
    });
    return el("tr", { "data-name": file.name },
      el("td", {}, name), el("td", { text: file.is_dir ? "" : String(file.size) }),
      el("td", { text: when(file.modified_at) }), el("td", {}, remove));
  });
  filesBody.replaceChildren(...rows);
  if (!rows.length) filesBody.append(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "Empty directory" })));
}

document.getElementById("files-nav").addEventListener("submit", (event) => { event.preventDefault(); listFiles(); });
document.getElementById("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("upload-file");
  if (!input.files.length) { say("Choose a file first", { error: true }); return; }
  const form = new FormData();
  form.append("path", pathInput.value.trim() || "/workspace");
  for (const file of input.files) form.append("file", file, file.name);
  const done = await waiting(event.submitter, "Uploading", () => api("POST", `${BASE}/files/upload`, form));
  if (done) { input.value = ""; listFiles(); }
});

// --- preview links, SSH credentials, snapshots, forks --------------------------
const secrets = document.getElementById("secrets");
document.getElementById("preview").addEventListener("submit", async (event) => {
  event.preventDefault();
  const port = Number(event.target.port.value);
  const link = await waiting(event.submitter, "Preview link", () => api("GET", `${BASE}/preview/${port}`));
  if (link) secrets.prepend(secretBox(`Preview of port ${port}`, [["url", link.url], ["path url", link.path_url], ...(link.token ? [["token", link.token]] : [])]));
});
document.getElementById("ssh").addEventListener("click", async (event) => {
  const cred = await waiting(event.target, "SSH credential", () => api("GET", `${BASE}/ssh`));
  if (cred) secrets.prepend(secretBox("SSH credential", [["command", `ssh -p ${cred.port} ${cred.username}@${cred.host}`], ["password", cred.password || ""], ["expires", cred.expires_at || ""]]));
});

async function listSnapshots() {
  try {
    const page = await api("GET", `${BASE}/snapshots`);
    document.getElementById("snapshots").replaceChildren(...page.data.map((s) => el("li", { text: `${s.name} (${s.state}) ${s.id}` })));
  } catch (error) { /* shown when the user acts */ }
}
document.getElementById("snapshot").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = event.target.name.value.trim();
  const done = await waiting(event.submitter, "Taking snapshot", () => api("POST", `${BASE}/snapshots`, name ? { name } : {}));
  if (done) listSnapshots();
});
document.getElementById("fork").addEventListener("click", async (event) => {
  if (!(await confirmAction("Fork this environment (a copy of its files, running)?"))) return;
  const forked = await waiting(event.target, "Forking", () => api("POST", `${BASE}/fork`, {}));
  const first = forked && forked.environments && forked.environments[0];
  if (first && first.id) secrets.prepend(el("p", {}, "Forked: ", el("a", { href: `/environments/${first.id}` }, first.name || first.id)));
});

terminal.setup();
loadObject().then(() => followEvents());
listSnapshots();
loadMetrics();
setInterval(loadMetrics, 3000);
