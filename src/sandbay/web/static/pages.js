// The secondary pages: plain tables of one API list each, with an action or two.
"use strict";
const section = document.getElementById("section");
const out = document.getElementById("out");
const detail = document.getElementById("detail");

function items(answer) { return Array.isArray(answer) ? answer : (answer && answer.data) || []; }

function cell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) return when(value);
  return String(value);
}

// A table of `rows` with `columns` (field names) and per-row `actions`.
function table(rows, columns, actions = () => []) {
  const head = document.querySelector("#rows thead");
  const body = document.querySelector("#rows tbody");
  head.replaceChildren(el("tr", {}, ...columns.map((c) => el("th", { scope: "col", text: c.replaceAll("_", " ") })), el("th", { scope: "col", text: "Actions" })));
  body.replaceChildren(...rows.map((row) => el("tr", { "data-id": row.id || "" },
    ...columns.map((c) => el("td", {}, c === "id" ? el("code", { class: "id", text: cell(row[c]) }) : cell(row[c]))),
    el("td", { class: "actions" }, ...actions(row)))));
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: String(columns.length + 1), class: "muted", text: "Nothing here yet." })));
}

function button(label, onclick, danger = false) {
  const b = el("button", { type: "button", class: danger ? "danger" : "" }, label);
  b.addEventListener("click", () => onclick(b));
  return b;
}

const PAGES = {
  async keys() {
    const load = async () => table(items(await api("GET", "/v1/keys")), ["name", "id", "kind", "prefix", "created_at", "revoked_at"],
      (key) => key.revoked_at ? [] : [button(`Revoke`, async (b) => {
        if (!(await confirmAction(`Revoke the key ${key.name}? Programs using it are refused at once.`))) return;
        await waiting(b, "Revoking", () => api("DELETE", `/v1/keys/${key.id}`));
        load();
      }, true)]);
    document.getElementById("create-key").addEventListener("submit", async (event) => {
      event.preventDefault();
      const created = await waiting(event.submitter, "Creating key", () => api("POST", "/v1/keys", { name: event.target.name.value.trim() }));
      if (created) { out.replaceChildren(secretBox(`Key ${created.name}`, [["key", created.key]])); event.target.reset(); load(); }
    });
    await load();
  },
  async secrets() {
    const created = document.getElementById("create-secret");
    const edit = document.getElementById("edit-secret");
    let editing = null;
    const load = async () => table(items(await api("GET", "/v1/secrets")).map((s) => ({
      ...s, hosts: s.hosts.length ? s.hosts.join(", ") : "every host", updated: s.updated_at,
    })), ["name", "placeholder", "hosts", "description", "updated"], (secret) => [
      button("Edit", () => {
        editing = secret;
        document.getElementById("e-name").textContent = secret.name;
        edit.hosts.value = secret.hosts === "every host" ? "" : secret.hosts.split(", ").join("\n");
        edit.description.value = secret.description || "";
        edit.value.value = "";
        document.getElementById("edit-error").textContent = "";
        edit.hidden = false;
        edit.hosts.focus();
      }),
      button("Delete", async (b) => {
        if (!(await confirmAction(`Delete the secret ${secret.name}? Environments given it then send its placeholder unchanged.`))) return;
        if (await waiting(b, `Deleting ${secret.name}`, () => api("DELETE", `/v1/secrets/${encodeURIComponent(secret.id)}`)) !== undefined) {
          if (editing && editing.id === secret.id) edit.hidden = true;
          load();
        }
      }, true),
    ]);
    // The value goes only into a POST/PATCH body, and the field is emptied after.
    created.addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      const body = { name: form.name.value.trim(), value: form.value.value, hosts: splitList(form.hosts.value) };
      if (form.description.value.trim()) body.description = form.description.value.trim();
      const made = await inline(form, "create-error", "Creating secret", () => api("POST", "/v1/secrets", body));
      if (made) {
        form.reset();
        out.replaceChildren(el("p", {}, `Secret ${made.name} created. Environments given it see `, el("code", { text: made.placeholder }), "."));
        load();
      }
    });
    edit.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {};
      const hosts = splitList(edit.hosts.value);
      const before = editing.hosts === "every host" ? [] : editing.hosts.split(", ");
      if (JSON.stringify(hosts) !== JSON.stringify(before)) body.hosts = hosts;
      const description = edit.description.value.trim();
      if (description !== (editing.description || "")) body.description = description || null;
      if (edit.value.value) body.value = edit.value.value;
      if (!Object.keys(body).length) { say("Nothing changed"); return; }
      const saved = await inline(edit, "edit-error", `Saving ${editing.name}`, () => api("PATCH", `/v1/secrets/${encodeURIComponent(editing.id)}`, body));
      edit.value.value = "";
      if (saved) { edit.hidden = true; load(); }
    });
    document.getElementById("edit-cancel").addEventListener("click", () => { edit.value.value = ""; edit.hidden = true; });
    await load();
  },
  async pools() {
    const pools = items(await api("GET", "/v1/pools"));
    table(pools, pools.length ? Object.keys(pools[0]).filter((k) => typeof pools[0][k] !== "object").slice(0, 8) : ["name", "size", "ready"]);
  },
  async usage() {
    const answer = await api("GET", "/v1/orgs/current/usage");
    const quota = { running_environments: "max_running_environments", running_cpu: "max_running_cpu", running_memory_mb: "max_running_memory_mb", running_seconds_this_month: "max_running_hours_per_month" };
    const rows = Object.entries(answer.usage).map(([name, used]) => ({ measure: name, used, quota: quota[name] ? answer.quotas[quota[name]] : "" }));
    Object.entries(answer.quotas).filter(([name]) => !Object.values(quota).includes(name)).forEach(([name, value]) => rows.push({ measure: name, used: "", quota: value }));
    table(rows, ["measure", "used", "quota"]);
  },
  async instances() {
    const load = async () => table(items(await api("GET", "/v1/instances")), ["name", "id", "status", "created_at"], (inst) => [
      button("Start", (b) => waiting(b, "Starting", () => api("POST", `/v1/instances/${inst.id}/start`)).then(load)),
      button("Stop", (b) => waiting(b, "Stopping", () => api("POST", `/v1/instances/${inst.id}/stop`)).then(load)),
    ]);
    await load();
  },
  async work() { await perEnvironment((env) => `/v1/environments/${env}/work`, ["id", "state", "created_at"], (env, item) => [
    button("Stop", async (b) => {
      if (!(await confirmAction(`Stop the work item ${item.id}?`))) return;
      await waiting(b, "Stopping", () => api("POST", `/v1/environments/${env}/work/${item.id}/stop`, {}));
    }, true)], "self_hosted"); },
  async agents() { await perEnvironment((env) => `/v1/environments/${env}/agent/runs`, ["id", "status", "agent", "created_at"], (env, run) => [
    button("Transcript", async (b) => {
      const full = await waiting(b, "Loading transcript", () => api("GET", `/v1/environments/${env}/agent/runs/${run.id}`));
      if (full) { detail.hidden = false; detail.textContent = JSON.stringify(full, null, 2); detail.focus(); }
    })]); },
};

// Submit `work` from `form`: a wait indicator, and the API's refusal shown in the form.
async function inline(form, errorId, label, work) {
  const error = document.getElementById(errorId);
  const submit = form.querySelector("button[type=submit]");
  error.textContent = "";
  submit.disabled = true;
  say(label + "…", { busy: true });
  try {
    const result = await work();
    say(label + ": done");
    return result;
  } catch (failure) {
    error.textContent = `${label} failed: ${failure.message}`;
    say(label + " failed", { error: true });
    return undefined;
  } finally {
    submit.disabled = false;
  }
}

// A list that belongs to one environment: pick it first.
async function perEnvironment(path, columns, actions, kind) {
  const select = document.getElementById("pick-env");
  const envs = items(await api("GET", "/v1/environments?limit=200")).filter((env) => !kind || env.kind === kind);
  select.replaceChildren(...envs.map((env) => el("option", { value: env.id, text: `${env.name} (${env.kind}, ${env.state})` })));
  const show = async () => {
    if (!select.value) { table([], columns); return; }
    try { table(items(await api("GET", path(select.value))), columns, (row) => actions(select.value, row)); }
    catch (error) { table([], columns); say(error.message, { error: true }); }
  };
  document.getElementById("pick").addEventListener("submit", (event) => { event.preventDefault(); show(); });
  await show();
}

PAGES[section.dataset.page]().catch((error) => say(error.message, { error: true }));
