// The environment list: filters, live states from the organization's event stream
// (no reload), a create form, and per-row lifecycle actions with confirmation.
"use strict";
const tbody = document.querySelector("#envs tbody");
const filters = document.getElementById("filters");
let refreshTimer = null;

function row(env) {
  const tr = el("tr", { "data-id": env.id, "data-state": env.state });
  const labels = Object.entries(env.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  tr.append(
    el("td", { class: "state-cell" }, stateBadge(env.state)),
    el("td", {}, el("a", { href: `/environments/${env.id}` }, env.name)),
    el("td", {}, el("code", { class: "id", text: env.id })),
    el("td", {}, el("code", { text: env.image })),
    el("td", { text: labels }),
    el("td", { text: when(env.created_at) }),
    el("td", { class: "actions" }),
  );
  tr._env = env;
  renderActions(tr.lastChild, env);
  return tr;
}

function matchesText(env, text) {
  if (!text) return true;
  const hay = [env.name, env.id, env.image, ...Object.entries(env.labels || {}).map(([k, v]) => `${k}=${v}`)].join(" ").toLowerCase();
  return hay.includes(text.toLowerCase());
}

async function load() {
  const params = new URLSearchParams({ limit: "200" });
  const state = filters.state.value;
  const label = filters.label.value.trim();
  if (state) params.append("state", state);
  if (label) params.append("label", label);
  try {
    const page = await api("GET", "/v1/environments?" + params);
    const text = filters.text.value.trim();
    tbody.replaceChildren(...page.data.filter((env) => matchesText(env, text)).map(row));
    if (!tbody.children.length) tbody.append(el("tr", {}, el("td", { colspan: "7", class: "muted", text: "No environments match." })));
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) say("Listing failed: " + error.message, { error: true });
  }
}

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(load, 300);
}

function applyEvent(event) {
  if (!event.environment_id || !event.to_state) return;
  const tr = tbody.querySelector(`tr[data-id="${event.environment_id}"]`);
  if (!tr || filters.state.value) { refreshSoon(); return; }
  if (event.to_state === "deleted") { tr.remove(); return; }
  tr._env.state = event.to_state;
  tr.dataset.state = event.to_state;
  tr.querySelector(".state-cell").replaceChildren(stateBadge(event.to_state));
  renderActions(tr.querySelector(".actions"), tr._env);
}

function follow() {
  const live = document.getElementById("live");
  const source = new EventSource("/v1/events?follow=true");
  source.onopen = () => { live.textContent = "Live: states change here as they happen."; refreshSoon(); };
  source.onmessage = (message) => applyEvent(JSON.parse(message.data));
  source.onerror = () => { live.textContent = "Event stream interrupted; reconnecting…"; };
}

function createBody(form) {
  const body = { cpu: Number(form.cpu.value), memory_mb: Number(form.memory_mb.value), auto_stop_interval: Number(form.auto_stop_interval.value) };
  for (const key of ["name", "image", "command"]) if (form[key].value.trim()) body[key] = form[key].value.trim();
  const labels = form.labels.value.split(",").map((s) => s.trim()).filter(Boolean);
  if (labels.length) body.labels = Object.fromEntries(labels.map((pair) => { const i = pair.indexOf("="); return i < 0 ? [pair, ""] : [pair.slice(0, i), pair.slice(i + 1)]; }));
  body.network_block_all = form.network_block_all.checked;
  const allow = form.network_allow_list.value.split(",").map((s) => s.trim()).filter(Boolean);
  if (allow.length) body.network_allow_list = allow;
  const domains = splitList(form.network_domain_allow_list.value);
  if (domains.length) body.network_domain_allow_list = domains;
  const attached = parseVars(form.secrets.value);
  if (Object.keys(attached).length) body.secrets = attached;
  return body;
}

document.getElementById("create").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const created = await waiting(form.querySelector("button[type=submit]"), "Creating", () => api("POST", "/v1/environments", createBody(form)));
  if (created) { form.name.value = ""; refreshSoon(); }
});
filters.addEventListener("submit", (event) => { event.preventDefault(); load(); });
filters.state.addEventListener("change", load);
filters.text.addEventListener("input", load);

load();
follow();
