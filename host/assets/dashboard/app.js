// Spool's dashboard: one page over the JSON API (DESIGN.md, "HTTP API (v1)").
//
// Plain modern JavaScript, no framework and no build step. Every call sends the token typed at
// sign-in as `Authorization: Bearer`; the token is kept in sessionStorage, so it lives as long
// as the tab. With the admin token the operator picks a tenant, and every call carries
// `?tenant=NAME`. Lists are paged with the API's cursor, so nothing here asks the server to
// count or scan the jobs table.
"use strict";

const TOKEN_KEY = "spool.token";
const TENANT_KEY = "spool.tenant";
/** How often the overview (and the alert badge) refresh, in milliseconds. */
const REFRESH_MS = 3000;
/** Rows fetched per page of a job list. */
const PAGE = 50;
const STATES = ["scheduled", "available", "running", "retryable", "completed", "dead", "cancelled"];
const FINISHED = new Set(["completed", "dead", "cancelled"]);
const CANCELLABLE = new Set(["scheduled", "available", "retryable"]);
const RETRYABLE = new Set(["dead", "cancelled"]);

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** What the page knows: who is signed in, as which tenant, and each view's paging state. */
const session = {
  token: sessionStorage.getItem(TOKEN_KEY),
  admin: false,
  tenant: sessionStorage.getItem(TENANT_KEY),
  timer: null,
  refreshing: false,
  jobs: { filter: {}, cursor: null, generation: 0 },
  dead: { filter: {}, cursor: null, generation: 0 },
  job: { id: null, timer: null },
};

// ---------------------------------------------------------------------------------------------
// The API

/** An error answer from the API: its status and the problem's `detail`. */
class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/**
 * Calls the API: `path` is relative to the server (`/v1/...`), `params` become the query
 * string (empty values dropped) along with `tenant` when acting as one. Resolves to the parsed
 * JSON body; rejects with an ApiError carrying the problem's `detail`.
 */
async function api(method, path, { params = {}, body, tenant = session.tenant } = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  if (session.admin && tenant) url.searchParams.set("tenant", tenant);
  const headers = { Authorization: `Bearer ${session.token}`, Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, `the server cannot be reached (${e.message})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const detail = (data && (data.detail || data.title)) || `${response.status} ${response.statusText}`;
    const error = new ApiError(response.status, detail);
    if (response.status === 401 && session.token) signOut(detail);
    throw error;
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Small helpers for building the DOM without innerHTML (no markup from data, ever)

/** Creates an element with attributes (`dataset`, `class`, properties) and children. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const numberFormat = new Intl.NumberFormat();
const rateFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

/** Formats milliseconds as a short age: `850 ms`, `42 s`, `3 m 12 s`, `5 h 2 m`, `3 d 4 h`. */
function age(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  let s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s`;
  let m = Math.floor(s / 60);
  s %= 60;
  if (m < 60) return s ? `${m} m ${s} s` : `${m} m`;
  let hours = Math.floor(m / 60);
  m %= 60;
  if (hours < 48) return m ? `${hours} h ${m} m` : `${hours} h`;
  const days = Math.floor(hours / 24);
  hours %= 24;
  return hours ? `${days} d ${hours} h` : `${days} d`;
}

/** Formats an RFC 3339 time as local time, with the full value as a tooltip. */
function when(value) {
  if (!value) return h("span", { class: "muted" }, "—");
  const date = new Date(value);
  const text = Number.isNaN(date.getTime()) ? value : date.toLocaleString();
  return h("time", { datetime: value, title: value }, text);
}

function stateBadge(state) {
  return h("span", { class: `state state-${state}`, dataset: { state } }, state);
}

function jobLink(id) {
  return h("a", { href: `#/job/${encodeURIComponent(id)}`, class: "job-link", title: id }, shortId(id));
}

/** The tail of a job id: ids are UUIDv7, whose leading characters are a timestamp. */
function shortId(id) {
  const s = String(id);
  return s.length > 13 ? `…${s.slice(-12)}` : s;
}

/** Pretty-prints a JSON value, or shows a string as it is. */
function pretty(value) {
  if (value === undefined || value === null) return "—";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

function show(el, visible) {
  el.hidden = !visible;
}

let flashTimer = null;

/** Shows a passing notice. */
function flash(message) {
  const el = $("#flash");
  el.textContent = message;
  show(el, true);
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => show(el, false), 8000);
}

/** Shows an error until the next successful action; `null` clears it. */
function showError(error) {
  const el = $("#error");
  if (!error) {
    show(el, false);
    return;
  }
  el.textContent = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  show(el, true);
}

/** Runs an action, showing its error (if any) in the banner. */
async function guarded(action) {
  try {
    const value = await action();
    showError(null);
    return value;
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showError(e);
    return undefined;
  }
}

/** Asks before a destructive action; resolves to whether the operator agreed. */
function confirmAction(text, okLabel) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("#confirm-ok").onclick = null;
      $("#confirm-cancel").onclick = null;
      dialog.close();
      resolve(answer);
    };
    $("#confirm-ok").onclick = () => done(true);
    $("#confirm-cancel").onclick = () => done(false);
    dialog.oncancel = () => done(false);
    dialog.showModal();
  });
}

// ---------------------------------------------------------------------------------------------
// Signing in and out

/** Checks a token: whether it is the admin's (it may list tenants) or a tenant's. */
async function identify() {
  try {
    const data = await api("GET", "/v1/tenants", { tenant: null });
    session.admin = true;
    return data.tenants || [];
  } catch (e) {
    if (e instanceof ApiError && (e.status === 403 || e.status === 404)) {
      session.admin = false;
      return null;
    }
    throw e;
  }
}

async function signIn(token) {
  session.token = token;
  session.admin = false;
  const tenants = await identify();
  sessionStorage.setItem(TOKEN_KEY, token);
  const picker = $("#tenant-picker");
  const select = $("#tenant");
  select.replaceChildren();
  if (tenants) {
    const names = tenants.map((t) => t.name).sort();
    for (const name of names) select.append(h("option", { value: name }, name));
    if (!names.includes(session.tenant)) session.tenant = names[0] || null;
    if (session.tenant) {
      select.value = session.tenant;
      sessionStorage.setItem(TENANT_KEY, session.tenant);
    }
    $("#whoami").textContent = names.length ? "admin" : "admin (no tenants yet)";
  } else {
    session.tenant = null;
    sessionStorage.removeItem(TENANT_KEY);
    $("#whoami").textContent = "";
  }
  show(picker, Boolean(tenants));
  // Proves the token works for tenant calls too (as the chosen tenant, for the admin).
  if (!session.admin || session.tenant) await api("GET", "/v1/queues");
  show($("#login"), false);
  show($("#app"), true);
  document.body.dataset.signedIn = "true";
  startRefresh();
  route();
}

/** Forgets the token and shows the sign-in form, with `reason` when the server sent one. */
function signOut(reason) {
  session.token = null;
  session.admin = false;
  session.tenant = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(TENANT_KEY);
  stopRefresh();
  stopJobRefresh();
  delete document.body.dataset.signedIn;
  show($("#app"), false);
  show($("#login"), true);
  const error = $("#login-error");
  error.textContent = reason || "";
  show(error, Boolean(reason));
  $("#token").value = "";
  $("#token").focus();
}

// ---------------------------------------------------------------------------------------------
// Routing: #/overview, #/jobs, #/job/ID, #/schedules, #/dead, #/alerts

function route() {
  if (!session.token) return;
  const hash = location.hash.replace(/^#\/?/, "");
  const [view, ...rest] = hash.split("/");
  const name = ["overview", "jobs", "job", "schedules", "dead", "alerts"].includes(view) ? view : "overview";
  for (const section of $$("main > section")) show(section, section.dataset.view === name);
  for (const link of $$("#nav a")) {
    link.classList.toggle("active", link.dataset.nav === name || (name === "job" && link.dataset.nav === "jobs"));
  }
  document.body.dataset.view = name;
  if (name !== "job") stopJobRefresh();
  if (name === "overview") refresh();
  else if (name === "jobs") loadJobs(true);
  else if (name === "dead") loadDead(true);
  else if (name === "schedules") loadSchedules();
  else if (name === "alerts") loadAlerts();
  else if (name === "job") loadJob(decodeURIComponent(rest.join("/")));
}

// ---------------------------------------------------------------------------------------------
// Overview: queues and firing alerts, refreshed every few seconds

function startRefresh() {
  stopRefresh();
  session.timer = setInterval(() => {
    if (!document.hidden) refresh();
  }, REFRESH_MS);
}

function stopRefresh() {
  clearInterval(session.timer);
  session.timer = null;
}

/** Refreshes the alert badge and, when it is shown, the overview. One refresh at a time. */
async function refresh() {
  if (session.refreshing || !session.token) return;
  // The admin acts for one tenant at a time; with no tenant yet there is nothing to show.
  if (session.admin && !session.tenant) {
    renderQueues([]);
    return;
  }
  session.refreshing = true;
  try {
    const overview = document.body.dataset.view === "overview";
    const [queues, alerts] = await Promise.all([
      overview ? api("GET", "/v1/queues") : null,
      api("GET", "/v1/alerts").catch(() => null),
    ]);
    const own = alerts ? ownAlerts(alerts.alerts || []) : null;
    if (own) renderAlertBadge(own);
    if (queues) {
      renderQueues(queues.queues || []);
      renderOverviewAlerts(own);
    }
    showError(null);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) showError(e);
  } finally {
    session.refreshing = false;
  }
}

function countCell(state, n) {
  return h("td", { dataset: { state, count: String(n) }, class: n ? "" : "zero" }, numberFormat.format(n));
}

/** The share of finished attempts that failed over the window, or null when there were none. */
function failureRate(completedPerMin, failedPerMin) {
  const total = completedPerMin + failedPerMin;
  return total > 0 ? failedPerMin / total : null;
}

function rateCells(q) {
  const completed = Number(q.completed_per_min) || 0;
  const failed = Number(q.failed_per_min) || 0;
  const rate = failureRate(completed, failed);
  return [
    h("td", { dataset: { metric: "completed_per_min", value: String(completed) } }, rateFormat.format(completed)),
    h("td", { dataset: { metric: "failed_per_min", value: String(failed) } }, rateFormat.format(failed)),
    h("td", {
      dataset: { metric: "failure_rate", value: rate === null ? "" : String(rate) },
      class: rate === null ? "zero" : rate >= 0.5 ? "bad" : rate >= 0.1 ? "warn" : "",
    }, rate === null ? "—" : `${rateFormat.format(rate * 100)} %`),
  ];
}

function renderQueues(queues) {
  const body = $("#queues tbody");
  const foot = $("#queues tfoot");
  queues = [...queues].sort((a, b) => a.name.localeCompare(b.name));
  const totals = Object.fromEntries(STATES.map((s) => [s, 0]));
  let completed = 0;
  let failed = 0;
  let oldest = null;
  const rows = queues.map((q) => {
    const counts = q.counts || {};
    for (const s of STATES) totals[s] += Number(counts[s]) || 0;
    completed += Number(q.completed_per_min) || 0;
    failed += Number(q.failed_per_min) || 0;
    const ageMs = q.oldest_available_age_ms;
    if (ageMs !== null && ageMs !== undefined) oldest = Math.max(oldest ?? 0, ageMs);
    const queueLink = h("a", { href: "#/jobs", onclick: () => presetJobs({ queue: q.name }) }, q.name);
    return h("tr", { dataset: { queue: q.name } },
      h("th", { class: "text", scope: "row" }, queueLink),
      STATES.map((s) => countCell(s, Number(counts[s]) || 0)),
      h("td", { dataset: { metric: "oldest_available_age_ms", value: ageMs ?? "" } }, age(ageMs)),
      rateCells(q));
  });
  body.replaceChildren(...rows);
  foot.replaceChildren();
  if (queues.length > 1) {
    foot.append(h("tr", { dataset: { total: "true" } },
      h("th", { class: "text", scope: "row" }, "All queues"),
      STATES.map((s) => countCell(s, totals[s])),
      h("td", {}, age(oldest)),
      rateCells({ completed_per_min: completed, failed_per_min: failed })));
  }
  renderSummary(totals, completed, failed, oldest);
  show($("#queues-empty"), queues.length === 0);
  const updated = $("#overview-updated");
  const now = new Date();
  updated.textContent = now.toLocaleTimeString();
  updated.dateTime = now.toISOString();
  $("#queues").dataset.loaded = String(Number($("#queues").dataset.loaded || 0) + 1);
}

/** The headline figures over all queues: backlog, dead letters, throughput, failure rate. */
function renderSummary(totals, completed, failed, oldest) {
  const backlog = totals.scheduled + totals.available + totals.running + totals.retryable;
  const rate = failureRate(completed, failed);
  const card = (key, label, value, note, tone = "") =>
    h("div", { class: `stat ${tone}`, dataset: { stat: key } },
      h("div", { class: "stat-label" }, label),
      h("div", { class: "stat-value" }, value),
      h("div", { class: "stat-note muted" }, note));
  $("#summary").replaceChildren(
    card("backlog", "Backlog", numberFormat.format(backlog),
      `${numberFormat.format(totals.available)} available, ${numberFormat.format(totals.retryable)} retrying`),
    card("oldest", "Oldest available", age(oldest), "waiting to start"),
    card("throughput", "Completed / min", rateFormat.format(completed), "last five minutes"),
    card("failure-rate", "Failure rate", rate === null ? "—" : `${rateFormat.format(rate * 100)} %`,
      `${rateFormat.format(failed)} failed attempts / min`,
      rate === null ? "" : rate >= 0.5 ? "bad" : rate >= 0.1 ? "warn" : ""),
    card("dead", "Dead letters", numberFormat.format(totals.dead),
      totals.dead ? "waiting for retry or discard" : "none", totals.dead ? "bad" : ""),
  );
}

function firing(alerts) {
  return alerts.filter((a) => a.state === "firing" || (!a.resolved_at && a.state !== "resolved"));
}

/** The alerts of the tenant in view: the admin is sent every tenant's. */
function ownAlerts(alerts) {
  return session.admin && session.tenant ? alerts.filter((a) => !a.tenant || a.tenant === session.tenant) : alerts;
}

/** An alert's figure in its rule's unit: a share, a count of jobs, or seconds of waiting. */
function alertFigure(rule, value) {
  const n = Number(value);
  if (value === null || value === undefined || Number.isNaN(n)) return "—";
  if (rule === "failure_rate") return `${rateFormat.format(n * 100)} %`;
  if (rule === "backlog_age") return age(n * 1000);
  if (rule === "schedule_failing") return `${numberFormat.format(n)} runs`;
  return numberFormat.format(n);
}

function renderAlertBadge(alerts) {
  const n = firing(alerts).length;
  const badge = $("#alerts-badge");
  badge.textContent = String(n);
  badge.dataset.count = String(n);
  show(badge, n > 0);
}

function renderOverviewAlerts(alerts) {
  const list = $("#overview-alerts");
  if (alerts === null) {
    list.replaceChildren(h("li", { class: "muted" }, "Alerts are unavailable."));
    return;
  }
  const now = firing(alerts);
  list.replaceChildren(...(now.length
    ? now.map((a) => h("li", { class: "alert", dataset: { rule: a.rule, queue: a.queue || "" } },
      h("strong", {}, a.rule.replaceAll("_", " ")), a.queue ? ` on ${a.queue}` : "", ": ",
      a.description || `${alertFigure(a.rule, a.value)}, over ${alertFigure(a.rule, a.threshold)}`,
      h("span", { class: "muted" }, " — since "), when(a.fired_at)))
    : [h("li", { class: "muted" }, "None firing.")]));
}

// ---------------------------------------------------------------------------------------------
// Job search

function presetJobs(filter) {
  $("#filter-state").value = filter.state || "";
  $("#filter-queue").value = filter.queue || "";
  $("#filter-handler").value = filter.handler || "";
}

function jobsFilter() {
  return {
    state: $("#filter-state").value,
    queue: $("#filter-queue").value.trim(),
    handler: $("#filter-handler").value.trim(),
  };
}

/** Loads the first page of the job list (`fresh`) or the next one. */
async function loadJobs(fresh) {
  const list = session.jobs;
  if (fresh) {
    list.filter = jobsFilter();
    list.cursor = null;
    list.generation += 1;
  }
  const generation = list.generation;
  const table = $("#jobs");
  table.setAttribute("aria-busy", "true");
  await guarded(async () => {
    const data = await api("GET", "/v1/jobs", { params: { ...list.filter, limit: PAGE, cursor: list.cursor } });
    if (generation !== list.generation) return;
    const rows = (data.jobs || []).map(jobRow);
    if (fresh) $("#jobs tbody").replaceChildren(...rows);
    else $("#jobs tbody").append(...rows);
    list.cursor = data.next_cursor || null;
    show($("#jobs-more"), Boolean(list.cursor));
    show($("#jobs-empty"), $$("#jobs tbody tr").length === 0);
  });
  table.removeAttribute("aria-busy");
}

function jobRow(job) {
  return h("tr", { dataset: { jobId: job.id, state: job.state } },
    h("td", {}, jobLink(job.id)),
    h("td", {}, job.handler),
    h("td", {}, job.queue),
    h("td", {}, stateBadge(job.state)),
    h("td", { class: "num" }, `${job.attempt}/${job.max_attempts}`),
    h("td", {}, when(job.created_at)),
    h("td", {}, when(job.run_at)),
    h("td", {}, when(job.finished_at)));
}

// ---------------------------------------------------------------------------------------------
// One job

function stopJobRefresh() {
  clearTimeout(session.job.timer);
  session.job.timer = null;
}

/** Shows job `id`; while it is unfinished it is fetched again every few seconds. */
async function loadJob(id) {
  stopJobRefresh();
  session.job.id = id;
  $("#job-id").textContent = id;
  const view = $("#view-job");
  const job = await guarded(() => api("GET", `/v1/jobs/${encodeURIComponent(id)}`));
  if (session.job.id !== id || document.body.dataset.view !== "job") return;
  if (!job) {
    view.dataset.state = "";
    return;
  }
  renderJob(job);
  if (!FINISHED.has(job.state)) {
    session.job.timer = setTimeout(() => {
      if (session.job.id === id && document.body.dataset.view === "job") loadJob(id);
    }, REFRESH_MS);
  }
}

function renderJob(job) {
  const view = $("#view-job");
  view.dataset.jobId = job.id;
  view.dataset.state = job.state;
  const field = (name, label, value) => [
    h("dt", {}, label),
    h("dd", { dataset: { field: name } }, value),
  ];
  $("#job-fields").replaceChildren(
    ...field("state", "State", stateBadge(job.state)),
    ...field("handler", "Handler", job.handler),
    ...field("queue", "Queue", job.queue),
    ...field("attempt", "Attempt", `${job.attempt} of ${job.max_attempts}`),
    ...field("idempotency_key", "Idempotency key", h("code", {}, job.idempotency_key ?? "—")),
    ...field("created_at", "Created", when(job.created_at)),
    ...field("run_at", "Run at", when(job.run_at)),
    ...field("finished_at", "Finished", when(job.finished_at)),
  );
  const payload = job.payload !== undefined && job.payload !== null
    ? pretty(job.payload)
    : job.payload_base64 ? `base64: ${job.payload_base64}` : "—";
  $("#job-payload").textContent = payload;
  const errors = job.errors || [];
  $("#job-errors tbody").replaceChildren(...errors.map((e) =>
    h("tr", { dataset: { attempt: String(e.attempt), kind: e.kind } },
      h("td", { class: "num" }, String(e.attempt)),
      h("td", {}, when(e.at)),
      h("td", {}, h("span", { class: `kind kind-${e.kind}` }, e.kind)),
      h("td", { class: "message" }, e.message))));
  show($("#job-errors"), errors.length > 0);
  show($("#job-errors-empty"), errors.length === 0);
  $("#job-result").textContent = job.result_base64 ? `base64: ${job.result_base64}` : pretty(job.result);
  const calls = httpCalls(job.logs);
  $("#job-http tbody").replaceChildren(...calls.map((c) =>
    h("tr", { dataset: { outcome: c.outcome } },
      h("td", {}, h("code", {}, `${c.method} ${c.host}${c.path}`)),
      h("td", {}, h("span", { class: `kind kind-${c.outcome}` }, c.status || c.outcome)),
      h("td", { class: "num" }, c.bytes || "—"),
      h("td", { class: "num" }, c.duration_ms || "—"),
      h("td", { class: "message" }, c.reason || ""))));
  show($("#job-http"), calls.length > 0);
  show($("#job-http-empty"), calls.length === 0);
  $("#job-logs").textContent = formatLogs(job.logs);
  show($("#job-retry"), RETRYABLE.has(job.state));
  show($("#job-cancel"), CANCELLABLE.has(job.state));
}

/** The last attempt's outbound HTTP requests: its log lines of source `http`, as objects. */
function httpCalls(logs) {
  if (!Array.isArray(logs)) return [];
  return logs
    .filter((line) => line && line.source === "http" && Array.isArray(line.fields))
    .map((line) => Object.fromEntries(line.fields.filter(Array.isArray)));
}

/** Renders captured log lines, `[level] message key=value`, one a line. */
function formatLogs(logs) {
  if (!logs || (Array.isArray(logs) && logs.length === 0)) return "—";
  if (!Array.isArray(logs)) return pretty(logs);
  return logs.map((line) => {
    if (typeof line !== "object" || line === null) return String(line);
    const fields = (line.fields || []).map((f) => (Array.isArray(f) ? `${f[0]}=${f[1]}` : pretty(f)));
    const at = line.at_ms !== undefined ? `+${line.at_ms}ms ` : "";
    const attempt = line.attempt !== undefined ? `#${line.attempt} ` : "";
    const source = line.source && line.source !== "log" ? `${line.source} ` : "";
    return `${attempt}${at}[${line.level || "info"}] ${source}${line.message ?? pretty(line)}${fields.length ? " " + fields.join(" ") : ""}`;
  }).join("\n");
}

async function jobAction(action) {
  const id = session.job.id;
  const ok = await guarded(() => api("POST", `/v1/jobs/${encodeURIComponent(id)}/${action}`));
  if (ok !== undefined) {
    flash(action === "retry" ? `Requeued job ${id}.` : `Cancelled job ${id}.`);
    loadJob(id);
  }
}

// ---------------------------------------------------------------------------------------------
// The dead-letter queue

function deadFilter() {
  return { queue: $("#dead-queue").value.trim(), handler: $("#dead-handler").value.trim() };
}

async function loadDead(fresh) {
  const list = session.dead;
  if (fresh) {
    list.filter = deadFilter();
    list.cursor = null;
    list.generation += 1;
  }
  const generation = list.generation;
  await guarded(async () => {
    const data = await api("GET", "/v1/dead", { params: { ...list.filter, limit: PAGE, cursor: list.cursor } });
    if (generation !== list.generation) return;
    const rows = (data.jobs || []).map(deadRow);
    if (fresh) $("#dead tbody").replaceChildren(...rows);
    else $("#dead tbody").append(...rows);
    list.cursor = data.next_cursor || null;
    show($("#dead-more"), Boolean(list.cursor));
    show($("#dead-empty"), $$("#dead tbody tr").length === 0);
    $("#dead").dataset.loaded = String(generation);
  });
  $("#dead-select-all").checked = false;
  updateBulk();
}

function lastError(job) {
  const errors = job.errors || [];
  const last = errors[errors.length - 1] || job.last_error;
  if (!last) return h("span", { class: "muted" }, "—");
  return h("span", { title: last.message || "" },
    h("span", { class: `kind kind-${last.kind}` }, last.kind), " ", truncate(last.message || "", 80));
}

function truncate(s, n) {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function deadRow(job) {
  return h("tr", { dataset: { jobId: job.id, state: job.state } },
    h("td", {}, h("input", { type: "checkbox", class: "select", "aria-label": `Select ${job.id}`, dataset: { jobId: job.id }, onchange: updateBulk })),
    h("td", {}, jobLink(job.id)),
    h("td", {}, job.handler),
    h("td", {}, job.queue),
    h("td", { class: "num" }, `${job.attempt}/${job.max_attempts}`),
    h("td", {}, when(job.finished_at)),
    h("td", {}, lastError(job)),
    h("td", { class: "row-actions" },
      h("button", { type: "button", class: "small", dataset: { action: "retry", jobId: job.id }, onclick: () => deadAction("retry", { ids: [job.id] }) }, "Retry"),
      h("button", { type: "button", class: "small danger", dataset: { action: "discard", jobId: job.id }, onclick: () => deadAction("discard", { ids: [job.id] }) }, "Discard")));
}

function selectedDead() {
  return $$("#dead tbody input.select:checked").map((box) => box.dataset.jobId);
}

function updateBulk() {
  const n = selectedDead().length;
  $("#dead-retry-selected").disabled = n === 0;
  $("#dead-discard-selected").disabled = n === 0;
  $("#dead-retry-selected").textContent = n ? `Retry ${n} selected` : "Retry selected";
  $("#dead-discard-selected").textContent = n ? `Discard ${n} selected` : "Discard selected";
}

/** Retries or discards dead jobs: `body` is `{ids}` or `{handler?, queue?}`. */
async function deadAction(action, body) {
  const many = !body.ids || body.ids.length > 1;
  if (action === "discard" || many) {
    const what = body.ids
      ? `${body.ids.length} dead job${body.ids.length === 1 ? "" : "s"}`
      : `every dead job${body.queue ? ` on queue ${body.queue}` : ""}${body.handler ? ` of handler ${body.handler}` : ""}`;
    const verb = action === "retry" ? "Requeue" : "Discard";
    const warning = action === "discard" ? " Discarded jobs cannot be recovered." : "";
    if (!(await confirmAction(`${verb} ${what}?${warning}`, verb))) return;
  }
  for (const button of $$(`#dead button`)) button.disabled = true;
  const data = await guarded(() => api("POST", `/v1/dead/${action}`, { body }));
  for (const button of $$(`#dead button`)) button.disabled = false;
  if (data !== undefined) {
    const n = action === "retry" ? data?.retried : data?.discarded;
    const count = n ?? (body.ids ? body.ids.length : 0);
    const jobs = `${count} job${count === 1 ? "" : "s"}`;
    const detail = body.ids && body.ids.length === 1 ? ` (${body.ids[0]})` : "";
    flash(action === "retry" ? `Requeued ${jobs}${detail}.` : `Discarded ${jobs}${detail}.`);
    $("#flash").dataset.action = action;
    $("#flash").dataset.count = String(count);
  }
  await loadDead(true);
}

// ---------------------------------------------------------------------------------------------
// Schedules

/** One recent run: the job's state (a link to the job) or, without a job, the tick's outcome. */
function runBadge(run) {
  const state = run.job_state || run.outcome;
  const badge = h("span", { class: `state state-${state}`, dataset: { state }, title: `${run.tick_at}: ${run.outcome}${run.detail ? ` (${run.detail})` : ""}` }, state);
  return run.job_id && run.outcome !== "skipped"
    ? h("a", { href: `#/job/${encodeURIComponent(run.job_id)}`, class: "job-link" }, badge)
    : badge;
}

async function loadSchedules() {
  await guarded(async () => {
    const data = await api("GET", "/v1/schedules");
    const schedules = data.schedules || [];
    $("#schedules tbody").replaceChildren(...schedules.map((s) => {
      const state = s.enabled ? "active" : "paused";
      return h("tr", { dataset: { schedule: s.name, state } },
        h("td", {}, s.name),
        h("td", {}, h("code", {}, s.cron)),
        h("td", {}, s.timezone),
        h("td", {}, s.handler),
        h("td", {}, h("span", { class: `state schedule-${state}` }, state)),
        h("td", { class: "next-fire" }, when((s.next_fire_times || [])[0])),
        h("td", { class: "last-fire" }, when(s.last_fired_at)),
        h("td", { class: "runs" }, ...(s.last_runs || []).map(runBadge)));
    }));
    show($("#schedules-empty"), schedules.length === 0);
  });
}

// ---------------------------------------------------------------------------------------------
// Alerts

async function loadAlerts() {
  await guarded(async () => {
    const data = await api("GET", "/v1/alerts");
    const alerts = ownAlerts([...(data.alerts || [])]);
    const isFiring = new Set(firing(alerts));
    alerts.sort((a, b) => (isFiring.has(b) - isFiring.has(a)) || String(b.fired_at).localeCompare(String(a.fired_at)));
    $("#alerts tbody").replaceChildren(...alerts.map((a) => {
      const state = isFiring.has(a) ? "firing" : "resolved";
      return h("tr", { dataset: { rule: a.rule, state } },
        h("td", {}, h("span", { class: `state alert-${state}` }, state)),
        h("td", {}, a.rule),
        h("td", {}, a.queue || "—"),
        h("td", { class: "num" }, alertFigure(a.rule, a.value)),
        h("td", { class: "num" }, alertFigure(a.rule, a.threshold)),
        h("td", { class: "message" }, a.description || ""),
        h("td", {}, when(a.fired_at)),
        h("td", {}, when(a.resolved_at)));
    }));
    show($("#alerts-empty"), alerts.length === 0);
    renderAlertBadge(alerts);
  });
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  $("#login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("#token").value.trim();
    const error = $("#login-error");
    show(error, false);
    $("#login-submit").disabled = true;
    try {
      await signIn(token);
    } catch (e) {
      session.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      error.textContent = e.status === 401 ? `That token is not valid: ${e.message}` : e.message;
      show(error, true);
      show($("#login"), true);
      show($("#app"), false);
    } finally {
      $("#login-submit").disabled = false;
    }
  });
  $("#logout").addEventListener("click", () => signOut(null));
  $("#tenant").addEventListener("change", () => {
    session.tenant = $("#tenant").value;
    sessionStorage.setItem(TENANT_KEY, session.tenant);
    route();
  });
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && document.body.dataset.view === "overview") refresh();
  });

  $("#jobs-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    loadJobs(true);
  });
  $("#jobs-more").addEventListener("click", () => loadJobs(false));
  $("#job-retry").addEventListener("click", () => jobAction("retry"));
  $("#job-cancel").addEventListener("click", () => jobAction("cancel"));

  $("#dead-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    loadDead(true);
  });
  $("#dead-more").addEventListener("click", () => loadDead(false));
  $("#dead-select-all").addEventListener("change", (event) => {
    for (const box of $$("#dead tbody input.select")) box.checked = event.target.checked;
    updateBulk();
  });
  $("#dead-retry-selected").addEventListener("click", () => deadAction("retry", { ids: selectedDead() }));
  $("#dead-discard-selected").addEventListener("click", () => deadAction("discard", { ids: selectedDead() }));
  const matching = () => {
    const { queue, handler } = deadFilter();
    const body = {};
    if (queue) body.queue = queue;
    if (handler) body.handler = handler;
    return body;
  };
  $("#dead-retry-all").addEventListener("click", () => deadAction("retry", matching()));
  $("#dead-discard-all").addEventListener("click", () => deadAction("discard", matching()));
}

async function start() {
  wire();
  if (!session.token) {
    signOut(null);
    return;
  }
  try {
    await signIn(session.token);
  } catch (e) {
    signOut(e.message);
  }
}

start();
