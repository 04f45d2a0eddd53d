// The operators' view (the tenant's API key): per JIRA instance today's figures, their history as charts, and the
// newest failed and conflicting entries with a Retry button.
import {$, ApiError, api, complain, el, ms, pct, say, when} from "./api.js";
import {barChart, lineChart} from "./charts.js";

const REFRESH_MS = 5000;
const HISTORY_REFRESH_MS = 30000;
let timers = [];
let historyData = null;
let windowName = "1h";
let hooks = {};

// plain words next to the jargon
function circuitWords(circuit) {
  const every = Math.round(circuit.retry_every_seconds || 30);
  if (circuit.state === "open") return `circuit open — JIRA looks down, retrying every ${every} s`;
  if (circuit.state === "half_open") return "circuit half-open — trying one request to see whether JIRA is back";
  return "circuit closed — JIRA answers normally";
}

function figure(label, field, value, title) {
  return el("div", {class: "figure", title: title || null}, el("div", {class: "label"}, label),
            el("div", {class: "value", "data-field": field}, value));
}

function renderInstances(instances) {
  const box = $("#instances");
  box.replaceChildren();
  $("#no-instances").hidden = instances.length > 0;
  for (const inst of instances) {
    const rl = inst.rate_limit;
    box.append(el("article", {class: "card", "data-instance": inst.id, "aria-labelledby": "name-" + inst.id},
      el("h3", {}, el("span", {id: "name-" + inst.id, "data-field": "name"}, inst.name),
         el("span", {class: "badge " + inst.circuit.state, "data-field": "circuit"}, inst.circuit.state)),
      el("div", {class: "muted"}, inst.base_url),
      el("div", {class: "explained", "data-field": "circuit-explained"}, circuitWords(inst.circuit)),
      el("div", {class: "card-main"}, el("div", {},
      el("div", {class: "figures"},
        figure("Queue", "queue_length", inst.queue_length, "entries waiting to be pushed"),
        figure("Due now", "due_now", inst.due_now, "of those, the ones whose push is due now"),
        figure("Success rate", "success_rate", pct(inst.success_rate)),
        figure("Failure rate", "failure_rate", pct(inst.failure_rate)),
        figure("Push p50", "p50", ms(inst.push.p50_ms), "half of the writes of the last hour were faster"),
        figure("Push p95", "p95", ms(inst.push.p95_ms), "95 % of the writes of the last hour were faster"),
        figure("Rate limit", "rate_limit", rl.grants_last_second + " / " + rl.rate_limit_per_second + " per s",
               "requests let through in the last second / the limit"),
        figure("Rate-limit usage", "rate_limit_usage", pct(rl.usage)),
        ...(inst.deployment === "cloud"
            ? [figure("Points this hour", "points_this_hour", String(inst.points_this_hour ?? 0),
                      "points of the Jira Cloud app's hourly quota this site's requests took"),
               figure("429s by reason", "rate_limited_by_reason",
                      Object.entries(inst.rate_limited_by_reason || {}).map(([r, n]) => r + " " + n).join(", ")
                        || "none", "Atlassian's 'slow down' answers, by RateLimit-Reason")] : []),
        ...(inst.token_refreshes && Object.keys(inst.token_refreshes).length
            ? [figure("Token renewals", "token_refreshes",
                      Object.entries(inst.token_refreshes).map(([o, n]) => o + " " + n).join(", "),
                      "OAuth 2.0 access-token renewals: renewed, refused (the user must reconnect), failed")] : []),
      ),
      el("div", {class: "counts", "data-field": "counts"},
         Object.entries(inst.counts).map(([s, n]) => s + " " + n).join(" · "))),
      el("div", {class: "charts", "data-history": inst.id})),
    ));
  }
  renderCharts();
}

function peak(values) {
  const known = values.filter((v) => v !== null && v !== undefined);
  return known.length ? Math.max(...known) : null;
}

function lastKnown(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return values[i];
  return null;
}

function chartsFor(inst) {
  const pts = inst.points, times = pts.map((p) => p.at);
  const span = windowName === "1h" ? "the last hour" : "the last 24 hours";
  const queue = pts.map((p) => p.queue_length);
  const requests = pts.map((p) => p.requests_per_second), writes = pts.map((p) => p.writes_per_second);
  const p50 = pts.map((p) => p.p50_ms), p95 = pts.map((p) => p.p95_ms);
  const kinds = [
    {label: "no answer (timeout)", values: pts.map((p) => p.failures.no_answer), cls: "k0"},
    {label: "sign-in rejected (401)", values: pts.map((p) => p.failures.auth), cls: "k1"},
    {label: "refused (4xx)", values: pts.map((p) => p.failures.refused), cls: "k2"},
    {label: "JIRA error (5xx)", values: pts.map((p) => p.failures.server), cls: "k3"},
    {label: "slow down (429)", values: pts.map((p) => p.rate_limited), cls: "k4"},
  ];
  const total = (k) => k.values.reduce((a, b) => a + b, 0);
  const charts = [
    lineChart({id: "queue", title: "Queue", explain: "entries waiting to be pushed", times, unit: "",
               series: [{label: "waiting", values: queue, cls: "s0"}],
               shaded: {flags: pts.map((p) => p.circuit_open === true), label: "circuit open (JIRA looked down)"},
               summary: `now ${lastKnown(queue) ?? "unknown"}, peak ${peak(queue) ?? "unknown"} over ${span}`}),
    lineChart({id: "throughput", title: "Requests to JIRA per second",
               explain: `against the limit of ${inst.rate_limit_per_second} per second`, times, unit: "/s",
               series: [{label: "all requests", values: requests, cls: "s0"},
                        {label: "worklog writes", values: writes, cls: "s1"}],
               limit: {label: "limit", value: inst.rate_limit_per_second},
               summary: `peak ${peak(requests) ?? 0} per second (writes ${peak(writes) ?? 0}), ` +
                        `limit ${inst.rate_limit_per_second} per second, over ${span}`}),
    barChart({id: "failures", title: "Failed requests and 429s",
              explain: "429: JIRA asked us to slow down (retried, no attempt spent)", times, kinds,
              summary: kinds.map((k) => `${total(k)} ${k.label}`).join(", ") + ` over ${span}`}),
    lineChart({id: "latency", title: "JIRA latency",
               explain: "p50: half the requests were faster; p95: all but the slowest 5 %", times, unit: " ms",
               series: [{label: "p50", values: p50, cls: "s0"}, {label: "p95", values: p95, cls: "s2"}],
               summary: `p95 now ${lastKnown(p95) ?? "–"} ms, worst ${peak(p95) ?? "–"} ms over ${span}`}),
  ];
  // Jira Cloud: the hourly points quota shared by every site (CONTRACT 12), once a sampler reports it
  const points = pts.map((p) => p.points_used);
  if (points.some((v) => v !== null)) {
    charts.push(lineChart({id: "points", title: "Cloud points used", explain: "this hour, across all sites",
                           times, series: [{label: "points", values: points, cls: "s0"}],
                           summary: `now ${lastKnown(points)}, peak ${peak(points)}`}));
  }
  return charts;
}

function renderCharts() {
  if (!historyData) return;
  for (const inst of historyData.instances) {
    const box = document.querySelector(`[data-history="${inst.id}"]`);
    if (box) box.replaceChildren(...chartsFor(inst));
  }
}

function renderAttention(entries) {
  const body = $("#attention tbody");
  body.replaceChildren();
  $("#no-attention").hidden = entries.length > 0;
  $("#attention").hidden = entries.length === 0;
  for (const e of entries) {
    const cell = el("td");
    if (e.status === "failed") {
      const button = el("button", {type: "button", "data-retry": e.id, "aria-label": "Retry entry " + e.id}, "Retry");
      button.addEventListener("click", () => retry(e.id, button));
      cell.append(button);
    } else {
      cell.append(el("span", {class: "muted"}, "its user decides (their page, or /api/v1/conflicts)"));
    }
    body.append(el("tr", {"data-entry": e.id},
      el("td", {}, e.id), el("td", {}, e.user), el("td", {}, e.ticket),
      el("td", {"data-field": "status"}, e.status), el("td", {class: "reason"}, e.reason || ""),
      el("td", {}, when(e.updated_at)), cell));
  }
}

async function retry(id, button) {
  button.disabled = true;
  try {
    await api("/api/v1/entries/" + encodeURIComponent(id) + "/retry", {method: "POST"});
    complain("");
    say(`Entry ${id} is queued again.`);
    button.textContent = "Queued";
  } catch (e) {
    complain("Retry of " + id + " failed: " + e.message);
    button.disabled = false;
  }
  refresh();
}

function failed(e, what) {
  if (e instanceof ApiError && e.status === 401) { hooks.onUnauthorized(e); return; }
  complain(`Could not load ${what}: ${e.message}`);
  $("#message").dataset.kind = "load";
}

async function refresh() {
  try {
    const stats = await api("/api/v1/stats");
    renderInstances(stats.instances);
    renderAttention(stats.attention);
    const points = stats.atlassian_points;
    $("#atlassian-points").hidden = !points;
    if (points) {
      $("#atlassian-points").textContent = "Jira Cloud points this hour (every site of the service's app): " +
        points.used + " of " + points.budget + " (80 % of " + points.quota + "), resets " +
        new Date(points.resets_at).toLocaleTimeString();
    }
    $("#content").hidden = false;
    $("#refreshed").textContent = "updated " + new Date().toLocaleTimeString();
    $("#refreshed").dataset.generatedAt = stats.generated_at;
    if ($("#message").dataset.kind === "load") complain("");
  } catch (e) {
    failed(e, "statistics");
  }
}

async function refreshHistory() {
  try {
    historyData = await api("/api/v1/stats/history?window=" + windowName);
    renderCharts();
  } catch (e) {
    failed(e, "history");
  }
}

function chooseWindow(name) {
  windowName = name;
  for (const b of document.querySelectorAll("[data-window]")) b.setAttribute("aria-pressed", String(b.dataset.window === name));
  refreshHistory();
}

for (const b of document.querySelectorAll("[data-window]")) b.addEventListener("click", () => chooseWindow(b.dataset.window));

export function start(me, options) {
  hooks = options;
  stop();
  refresh();
  refreshHistory();
  timers = [setInterval(refresh, REFRESH_MS), setInterval(refreshHistory, HISTORY_REFRESH_MS)];
}

export function stop() {
  for (const t of timers) clearInterval(t);
  timers = [];
  historyData = null;
}
