// devhost dashboard: plain JavaScript, no build step, no third-party code.
// Every value that comes from an instance is put on the page as text (textContent or a text
// node), never as HTML. Reads go to /_devhost/api; actions go to the public management
// webhooks, the same URLs any Durable client calls.
"use strict";

const API = "/_devhost/api";
const STATUSES = ["Pending", "Running", "Suspended", "Completed", "Failed", "Terminated",
                  "ContinuedAsNew", "Canceled"];
const POLL_MS = Number(new URLSearchParams(location.search).get("poll")) || 2000;
let info = { webhookPath: "/runtime/webhooks/durabletask", orchestrators: [], httpFunctions: [] };

// ---- small helpers -------------------------------------------------------------------------

function $(id) { return document.getElementById(id); }

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function showText(node, text) { node.textContent = text === null || text === undefined ? "" : String(text); }

function showError(node, message) {
  showText(node, message);
  node.hidden = !message;
}

function pretty(value) {
  if (value === null || value === undefined) return "null";
  return JSON.stringify(value, null, 2);
}

// The status API reports a Python client's input as the JSON text it sent (a string); show
// the value the orchestrator's get_input() returns. Other inputs are shown as they are.
function asGetInput(value) {
  if (typeof value !== "string") return value;
  try { return JSON.parse(value); } catch (_) { return value; }
}

// A history payload (JSON text, often a JSON string holding JSON text, as the Python SDK
// encodes inputs) shown compactly as the value it carries; text that is not JSON (failure
// reasons) is shown as it is. The raw JSON panel keeps the exact stored text.
function compact(text) {
  if (text === null || text === undefined) return "";
  let value;
  try { value = JSON.parse(text); } catch (_) { return String(text); }
  if (typeof value === "string") {
    try { return JSON.stringify(JSON.parse(value)); } catch (_) { /* a plain string */ }
  }
  return JSON.stringify(value);
}

function when(iso) {
  if (!iso) return "";
  return iso.replace("T", " ").replace("Z", "").replace(/(\.\d{3})\d*$/, "$1");
}

function duration(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60000).toFixed(1)} min`;
}

// Parses the text of a JSON field; returns {ok, value, text} where text is what to send.
function parseJson(text, label) {
  const trimmed = text.trim();
  if (trimmed === "") return { ok: true, value: null, text: "" };
  try {
    return { ok: true, value: JSON.parse(trimmed), text: trimmed };
  } catch (err) {
    return { ok: false, error: `${label} is not valid JSON: ${err.message}. Nothing was sent.` };
  }
}

function errorText(status, body) {
  if (body && typeof body === "object") {
    const message = body.error || body.ExceptionMessage || body.Message;
    if (message) return `${status}: ${message}`;
  }
  if (typeof body === "string" && body) return `${status}: ${body}`;
  return `request failed with status ${status}`;
}

async function call(method, url, body, contentType) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = body;
    init.headers["Content-Type"] = contentType || "application/json";
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    return { status: 0, body: `devhost is not reachable (${err.message})` };
  }
  const text = await response.text();
  let parsed = text;
  try { parsed = text ? JSON.parse(text) : null; } catch (_) { /* keep text */ }
  return { status: response.status, body: parsed, headers: response.headers };
}

function banner(message) { showError($("banner"), message); }

function hook(path) { return info.webhookPath + path; }

// ---- routing -------------------------------------------------------------------------------

let refreshTimer = null;
let refresh = async () => {};

function route() {
  const hash = location.hash || "#/";
  for (const view of ["list", "instance", "functions"]) $(`view-${view}`).hidden = true;
  if (hash.startsWith("#/instance/")) {
    const id = decodeURIComponent(hash.slice("#/instance/".length));
    $("view-instance").hidden = false;
    refresh = () => loadInstance(id);
  } else if (hash === "#/functions") {
    $("view-functions").hidden = false;
    refresh = async () => {};
    renderFunctions();
  } else {
    $("view-list").hidden = false;
    refresh = loadList;
  }
  refresh();
}

function schedule() {
  clearInterval(refreshTimer);
  refreshTimer = setInterval(() => {
    if ($("live").checked && !document.hidden && !busy) refresh();
  }, POLL_MS);
}

let busy = false;

// ---- the list ------------------------------------------------------------------------------

const list = { statuses: new Set(), tokens: [null], index: 0 };

function searchParams() {
  const p = new URLSearchParams();
  if (list.statuses.size) p.set("runtimeStatus", [...list.statuses].join(","));
  const name = $("q-name").value.trim();
  const prefix = $("q-prefix").value;
  if (name) p.set("name", name);
  if (prefix) p.set("instanceIdPrefix", prefix);
  if ($("q-from").value) p.set("createdTimeFrom", $("q-from").value + "Z");
  if ($("q-to").value) p.set("createdTimeTo", $("q-to").value + "Z");
  return p;
}

async function loadList() {
  busy = true;
  try {
    const p = searchParams();
    p.set("top", $("q-top").value);
    const token = list.tokens[list.index];
    if (token) p.set("after", token);
    const r = await call("GET", `${API}/instances?${p}`);
    if (r.status !== 200) { banner(errorText(r.status, r.body)); return; }
    banner("");
    renderChips(r.body.counts);
    renderRows(r.body.instances);
    list.tokens.length = list.index + 1;
    list.tokens.push(r.body.next);
    showText($("total"), `${r.body.total} instance${r.body.total === 1 ? "" : "s"}`);
    showText($("page-no"), `page ${list.index + 1}`);
    $("page-newer").disabled = list.index === 0;
    $("page-older").disabled = !r.body.next;
  } finally {
    busy = false;
  }
}

function renderChips(counts) {
  const chips = $("chips");
  const focused = document.activeElement && document.activeElement.dataset.status;
  chips.replaceChildren();
  for (const status of STATUSES) {
    const pressed = list.statuses.has(status);
    const chip = el("button", {
      type: "button", class: `chip status-${status}`, "aria-pressed": String(pressed),
      dataset: { status },
      onclick: () => {
        if (list.statuses.has(status)) list.statuses.delete(status); else list.statuses.add(status);
        firstPage();
      },
    }, status, " ", el("span", { class: "count" }, counts[status] ?? 0));
    chips.append(chip);
    if (focused === status) chip.focus();
  }
}

function renderRows(instances) {
  const rows = $("rows");
  // Live updates re-render the rows: keep keyboard focus on the same instance's link.
  const focusedRow = document.activeElement && document.activeElement.closest && document.activeElement.closest("tr[data-id]");
  const focusedId = focusedRow ? focusedRow.dataset.id : null;
  rows.replaceChildren();
  for (const inst of instances) {
    const link = el("a", { href: `#/instance/${encodeURIComponent(inst.instanceId)}` }, inst.instanceId);
    rows.append(el("tr", { dataset: { id: inst.instanceId } },
      el("td", { class: "id" }, link),
      el("td", {}, inst.name),
      el("td", {}, el("span", { class: `badge status-${inst.runtimeStatus}` }, inst.runtimeStatus)),
      el("td", {}, when(inst.createdTime)),
      el("td", {}, when(inst.lastUpdatedTime))));
    if (inst.instanceId === focusedId) link.focus();
  }
  $("empty").hidden = instances.length > 0;
}

function firstPage() {
  list.tokens = [null];
  list.index = 0;
  loadList();
}

async function purgeByFilter() {
  const p = searchParams();
  const count = $("total").textContent;
  if (!confirm(`Purge ${count} matching the current filter? Their history is deleted for good.`)) return;
  const r = await call("DELETE", `${API}/instances?${p}`);
  if (r.status !== 200) { banner(errorText(r.status, r.body)); return; }
  banner("");
  showText($("total"), `purged ${r.body.instancesDeleted}`);
  firstPage();
}

async function startInstance(event) {
  event.preventDefault();
  const error = $("start-error");
  showText($("start-result"), "");
  const input = parseJson($("start-input").value, "Input");
  if (!input.ok) { showError(error, input.error); return; }
  showError(error, "");
  const name = $("start-name").value;
  const id = $("start-id").value.trim();
  const path = `/orchestrators/${encodeURIComponent(name)}` + (id ? `/${encodeURIComponent(id)}` : "");
  // Sent as the Python client's start_new sends it: the input's JSON text as a JSON string,
  // which is what a Python orchestrator's get_input() decodes.
  const r = await call("POST", hook(path), input.text === "" ? undefined : JSON.stringify(JSON.stringify(input.value)));
  if (r.status !== 202) { showError(error, errorText(r.status, r.body)); return; }
  const started = r.body.id;
  $("start-result").replaceChildren("Started ",
    el("a", { href: `#/instance/${encodeURIComponent(started)}` }, started));
  loadList();
}

// ---- one instance --------------------------------------------------------------------------

let current = null;

async function loadInstance(id) {
  if (current !== id) {
    // The actions target the instance the URL names from the moment it changes: never show
    // (or act on) the previous instance while the new one loads.
    current = id;
    showError($("action-error"), "");
    showText($("action-result"), "");
    showText($("i-id"), id);
    for (const field of ["i-status", "i-input", "i-output", "i-custom"]) showText($(field), "");
    $("timeline").replaceChildren();
  }
  busy = true;
  try {
    const r = await call("GET", `${API}/instances/${encodeURIComponent(id)}`);
    if (current !== id) return;  // navigated to another instance meanwhile
    if (r.status !== 200) {
      banner(errorText(r.status, r.body));
      showText($("i-id"), id);
      showText($("i-status"), "");
      return;
    }
    banner("");
    renderInstance(r.body);
  } finally {
    busy = false;
  }
}

function renderInstance(data) {
  const s = data.status;
  showText($("i-id"), s.instanceId);
  showText($("i-status"), s.runtimeStatus);
  $("i-status").className = `badge status-${s.runtimeStatus}`;
  showText($("i-name"), s.name);
  showText($("i-created"), s.createdTime);
  showText($("i-updated"), s.lastUpdatedTime);
  const parent = $("i-parent");
  parent.replaceChildren(s.parentInstanceId
    ? el("a", { href: `#/instance/${encodeURIComponent(s.parentInstanceId)}` }, s.parentInstanceId)
    : "none");
  showText($("i-input"), pretty(asGetInput(s.input)));
  showText($("i-output"), pretty(s.output));
  showText($("i-custom"), pretty(s.customStatus));
  const body = $("timeline");
  body.replaceChildren();
  for (const entry of data.timeline) {
    const outcome = entry.failed ? entry.failure : entry.result;
    const nameCell = entry.instanceId
      ? el("td", {}, entry.name ?? "", " ", el("a", { href: `#/instance/${encodeURIComponent(entry.instanceId)}` }, entry.instanceId))
      : el("td", {}, entry.name ?? "");
    const detail = entry.details ? el("details", {}, el("summary", {}, "details"), el("pre", {}, entry.details)) : null;
    body.append(el("tr", { class: `kind-${entry.kind} state-${entry.state}${entry.failed ? " failed" : ""}` },
      el("td", {}, when(entry.start)),
      el("td", {}, entry.kind),
      nameCell,
      el("td", {}, duration(entry.durationMs)),
      el("td", {}, entry.state),
      el("td", { class: "payload" }, entry.kind === "timer" ? entry.input : compact(entry.input)),
      el("td", { class: "payload" }, compact(outcome), detail)));
  }
  showText($("raw"), JSON.stringify({ status: s, history: data.history }, null, 2));
}

async function act(operation) {
  const id = current;
  const error = $("action-error");
  showError(error, "");
  showText($("action-result"), "");
  const base = `/instances/${encodeURIComponent(id)}`;
  const reason = $("reason").value;
  let r;
  if (operation === "purge") {
    if (!confirm(`Purge ${id} and its history?`)) return;
    r = await call("DELETE", hook(base));
    if (r.status === 200) { location.hash = "#/"; banner(""); return; }
  } else if (operation === "restart") {
    r = await call("POST", hook(`${base}/restart?restartWithNewInstanceId=${$("restart-new").checked}`));
    if (r.status === 202) {
      showText($("action-result"), `restarted as ${r.body.id}`);
      if (r.body.id !== id) location.hash = `#/instance/${encodeURIComponent(r.body.id)}`;
      else loadInstance(id);
      return;
    }
  } else {
    r = await call("POST", hook(`${base}/${operation}?reason=${encodeURIComponent(reason)}`));
  }
  if (r.status !== 202 && r.status !== 200) { showError(error, errorText(r.status, r.body)); return; }
  showText($("action-result"), `${operation}: accepted`);
  loadInstance(id);
}

async function raiseEvent(event) {
  event.preventDefault();
  const error = $("action-error");
  showText($("action-result"), "");
  const data = parseJson($("raise-data").value, "Event data");
  if (!data.ok) { showError(error, data.error); return; }
  showError(error, "");
  const name = $("raise-name").value;
  const r = await call("POST",
    hook(`/instances/${encodeURIComponent(current)}/raiseEvent/${encodeURIComponent(name)}`),
    data.text === "" ? "null" : data.text);
  if (r.status !== 202) { showError(error, errorText(r.status, r.body)); return; }
  showText($("action-result"), `event ${name}: accepted`);
  loadInstance(current);
}

// ---- the app's HTTP functions --------------------------------------------------------------

const PARAM = /\{(\*?)([A-Za-z_][A-Za-z0-9_]*)[^}]*\}/g;

function renderFunctions() {
  const holder = $("functions");
  if (holder.childElementCount) return;
  for (const fn of info.httpFunctions) {
    const params = [...fn.route.matchAll(PARAM)].map(m => ({ catchAll: m[1] === "*", name: m[2] }));
    const inputs = params.map(p => el("input", { "aria-label": p.name, placeholder: p.name, dataset: { param: p.name } }));
    const methods = fn.methods || ["GET", "POST"];
    const method = el("select", { "aria-label": "method" }, ...methods.map(m => el("option", {}, m)));
    const body = el("input", { "aria-label": "body", placeholder: "JSON body (optional)" });
    const out = el("pre", { class: "result" });
    const error = el("p", { class: "error", role: "alert", hidden: "" });
    const form = el("form", { class: "row fn", dataset: { fn: fn.name } },
      el("strong", {}, fn.name), el("code", {}, fn.route), method,
      ...params.map((p, i) => el("label", {}, p.name, " ", inputs[i])),
      body, el("button", { type: "submit" }, "Send"), error, out);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const parsed = parseJson(body.value, "Body");
      if (!parsed.ok) { showError(error, parsed.error); return; }
      showError(error, "");
      let url = fn.route;
      params.forEach((p, i) => {
        const value = inputs[i].value;
        const encoded = p.catchAll ? value.split("/").map(encodeURIComponent).join("/") : encodeURIComponent(value);
        url = url.replace(new RegExp(`\\{\\*?${p.name}[^}]*\\}`), encoded);
      });
      url = url.replace(/\/+$/, "") || "/";
      const r = await call(method.value, url, parsed.text === "" ? undefined : parsed.text);
      showText(out, `${r.status}\n${typeof r.body === "string" ? r.body : pretty(r.body)}`);
    });
    holder.append(form);
  }
}

// ---- start-up ------------------------------------------------------------------------------

function onKey(event) {
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName);
  if (event.key === "/" && !typing) {
    event.preventDefault();
    location.hash = "#/";
    $("q-prefix").focus();
  } else if (event.key === "Escape" && location.hash.startsWith("#/instance/")) {
    location.hash = "#/";
  }
}

async function init() {
  const r = await call("GET", `${API}/info`);
  if (r.status === 200) info = r.body; else banner(errorText(r.status, r.body));
  showText($("hub"), `task hub ${info.taskHub || "?"}`);
  const select = $("start-name");
  select.replaceChildren(...info.orchestrators.map(n => el("option", {}, n)));
  $("search").addEventListener("submit", (e) => { e.preventDefault(); firstPage(); });
  $("q-clear").addEventListener("click", () => {
    for (const id of ["q-name", "q-prefix", "q-from", "q-to"]) $(id).value = "";
    list.statuses.clear();
    firstPage();
  });
  $("q-top").addEventListener("change", firstPage);
  $("page-older").addEventListener("click", () => { list.index += 1; loadList(); });
  $("page-newer").addEventListener("click", () => { list.index = Math.max(0, list.index - 1); loadList(); });
  $("purge-filter").addEventListener("click", purgeByFilter);
  $("start").addEventListener("submit", startInstance);
  $("raise").addEventListener("submit", raiseEvent);
  for (const op of ["terminate", "suspend", "resume", "restart", "purge"]) {
    $(`act-${op}`).addEventListener("click", () => act(op));
  }
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", route);
  route();
  schedule();
}

document.addEventListener("DOMContentLoaded", init);
