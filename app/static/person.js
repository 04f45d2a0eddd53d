// A person's page (a user token): their entries with status, problem and a Retry button; their JIRA connections
// with Connect / Reconnect (the OAuth dance, back to this page); their notifications; their open conflicts with
// both versions side by side and the two ways to resolve them. Everything the token reaches is theirs alone.
import {$, ApiError, api, complain, el, minutes, say, when} from "./api.js";

const REFRESH_MS = 10000;
const PAGE = 50;
let me = null;
let timer = null;
let shown = PAGE;
let hooks = {};
const rendered = {};  // section → the JSON it shows: a refresh that changes nothing keeps the DOM (and focus)

const STATUS_WORDS = {
  synced: "in JIRA", pending: "on its way to JIRA", failed: "failed", auth_required: "JIRA connection needed",
  conflict: "changed in JIRA too", skipped: "not sent", deleted: "deleted",
};

function changed(section, data) {
  const json = JSON.stringify(data);
  if (rendered[section] === json) return false;
  rendered[section] = json;
  return true;
}

async function call(path, options) {
  try {
    return await api(path, options);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) hooks.onUnauthorized(e);
    throw e;
  }
}

// -- entries ----------------------------------------------------------------------------------------------------

function entryRow(e) {
  const action = el("td");
  if (e.sync.status === "failed" || e.sync.status === "skipped") {
    const b = el("button", {type: "button", "data-retry": e.id, "aria-label": `Retry entry ${e.id} (${e.ticket})`},
                 "Retry");
    b.addEventListener("click", () => retry(e, b));
    action.append(b);
  } else if (e.sync.status === "auth_required") {
    action.append(el("a", {href: "#connections-heading"}, "Connect JIRA"));
  }
  return el("tr", {"data-entry": e.id},
    el("td", {}, e.id), el("td", {}, e.ticket), el("td", {}, `${e.date} ${e.start}`),
    el("td", {}, minutes(e.duration)),
    el("td", {"data-field": "status"},
       el("span", {class: "badge " + e.sync.status}, e.sync.status),
       el("span", {class: "visually-hidden"}, ": " + (STATUS_WORDS[e.sync.status] || ""))),
    el("td", {class: "reason", "data-field": "last_error"}, e.sync.last_error || ""),
    action);
}

async function loadEntries() {
  const page = await call(`/api/v1/entries?limit=${shown}`);
  $("#more-entries").hidden = !page.next_cursor || shown >= 1000;
  if (!changed("entries", page.items)) return;
  const body = $("#my-entries tbody");
  body.replaceChildren(...page.items.map(entryRow));
  $("#no-entries").hidden = page.items.length > 0;
  $("#my-entries").hidden = page.items.length === 0;
  const counts = {};
  for (const e of page.items) counts[e.sync.status] = (counts[e.sync.status] || 0) + 1;
  $("#my-summary").textContent = Object.entries(counts)
    .map(([status, n]) => `${n} ${STATUS_WORDS[status] || status}`).join(" · ");
}

async function retry(e, button) {
  button.disabled = true;
  try {
    await call(`/api/v1/entries/${encodeURIComponent(e.id)}/retry`, {method: "POST"});
    say(`Entry ${e.id} (${e.ticket}) is on its way to JIRA again.`);
    complain("");
  } catch (err) {
    complain(`Could not retry entry ${e.id}: ${err.message}`);
    button.disabled = false;
    return;
  }
  await loadEntries();
}

// -- connections ------------------------------------------------------------------------------------------------

const CONNECTION_WORDS = {
  connected: "connected", auth_required: "needs reconnecting", denied: "access was denied",
  not_connected: "not connected",
};

async function loadConnections() {
  const connections = await call(`/api/v1/users/${encodeURIComponent(me.user)}/connections`);
  const byInstance = Object.fromEntries(connections.map((c) => [c.jira_instance, c]));
  if (!changed("connections", connections)) return;
  const list = $("#my-connections");
  list.replaceChildren();
  $("#no-instances-person").hidden = me.jira_instances.length > 0;
  for (const inst of me.jira_instances) {
    const c = byInstance[inst.id];
    const status = c ? c.status : "not_connected";
    const label = status === "connected" ? "Reconnect" : "Connect";
    const button = el("button", {type: "button", class: status === "connected" ? "" : "primary",
                                 "data-connect": inst.id, "aria-label": `${label} ${inst.name}`}, label);
    button.addEventListener("click", () => connect(inst, button));
    list.append(el("li", {"data-connection": inst.id},
      el("span", {class: "grow"}, el("strong", {}, inst.name), " ",
         el("span", {class: "badge " + status, "data-field": "status"}, CONNECTION_WORDS[status] || status),
         c && c.jira_username ? el("span", {class: "muted"}, ` as ${c.jira_username}`) : null),
      button));
  }
}

async function connect(inst, button) {
  button.disabled = true;
  // JIRA sends the browser back here; `connected` tells this page what just happened
  const back = new URL(location.pathname, location.origin);
  back.searchParams.set("connected", inst.id);
  try {
    const started = await call(`/api/v1/jira-instances/${inst.id}/oauth/start`,
                               {method: "POST", body: JSON.stringify({user: me.user, return_url: back.href})});
    say(`Opening ${inst.name} to approve access…`);
    location.assign(started.authorize_url);
  } catch (e) {
    complain(`Could not start connecting to ${inst.name}: ${e.message}`);
    button.disabled = false;
  }
}

function afterConnecting() {
  const params = new URLSearchParams(location.search);
  const id = params.get("connected");
  if (!id) return;
  const inst = me.jira_instances.find((i) => i.id === id);
  const name = inst ? inst.name : "JIRA";
  if (params.get("error") === "wrong_jira_user") complain(`${name}: another JIRA account approved; nothing was stored.`);
  else say(`Connected to ${name}. Entries waiting for the connection are on their way.`);
  history.replaceState(null, "", location.pathname);
}

// -- notifications ----------------------------------------------------------------------------------------------

async function loadNotifications() {
  const notes = await call("/api/v1/notifications?limit=50");
  if (!changed("notifications", notes)) return;
  const list = $("#my-notifications");
  list.replaceChildren();
  $("#no-notifications").hidden = notes.length > 0;
  for (const n of notes) {
    const item = el("li", {"data-notification": n.id, class: n.read_at ? "read" : null},
      el("span", {class: "grow"}, el("span", {class: "badge " + n.kind}, n.kind.replace("_", " ")), " ", n.message,
         el("span", {class: "muted"}, " · " + when(n.created_at))));
    if (!n.read_at) {
      const b = el("button", {type: "button", "data-read": n.id}, "Mark read");
      b.addEventListener("click", async () => {
        b.disabled = true;
        try { await call(`/api/v1/notifications/${n.id}/read`, {method: "POST"}); } catch (e) { complain(e.message); }
        await loadNotifications();
      });
      item.append(b);
    }
    list.append(item);
  }
}

// -- conflicts --------------------------------------------------------------------------------------------------

function side(title, values, other, sideName) {
  const rows = [["Ticket", "ticket"], ["Date", "date"], ["Start", "start"], ["Duration", "duration"],
                ["Description", "description"]];
  if (!values) {
    return el("section", {class: "version", "data-side": sideName}, el("h4", {}, title),
              el("p", {}, "Deleted in JIRA."));
  }
  const show = (key, v) => (key === "duration" && v !== undefined && v !== null ? minutes(v) : (v ?? "–"));
  return el("section", {class: "version", "data-side": sideName}, el("h4", {}, title),
    el("dl", {}, rows.flatMap(([label, key]) => [
      el("dt", {}, label),
      el("dd", {class: other && other[key] !== values[key] ? "differs" : null, "data-field": key}, show(key, values[key])),
    ])),
    sideName === "jira" && values.author ? el("p", {class: "muted"}, "written by JIRA user " + values.author) : null);
}

function conflictCard(c) {
  const heading = `conflict-${c.id}`;
  const keepOurs = el("button", {type: "button", class: "primary", "data-resolve": "timetracker",
                                 "aria-describedby": heading}, "Keep TimeTracker's version");
  const keepTheirs = el("button", {type: "button", "data-resolve": "jira", "aria-describedby": heading},
                        c.remote ? "Keep JIRA's version" : "Keep JIRA's deletion (delete the entry)");
  keepOurs.addEventListener("click", () => resolve(c, "timetracker", [keepOurs, keepTheirs]));
  keepTheirs.addEventListener("click", () => resolve(c, "jira", [keepOurs, keepTheirs]));
  return el("article", {class: "conflict-card", "data-conflict": c.id, "data-entry": c.entry_id, "aria-labelledby": heading},
    el("h3", {id: heading}, `Entry ${c.entry_id} (${c.local.ticket}) — changed in JIRA, noticed ${when(c.detected_at)}`),
    el("div", {class: "versions"},
       side("In TimeTracker", c.local, c.remote, "timetracker"),
       side("In JIRA", c.remote, c.local, "jira")),
    el("div", {class: "actions"}, keepOurs, keepTheirs));
}

async function loadConflicts() {
  const conflicts = await call("/api/v1/conflicts?status=open");
  if (!changed("conflicts", conflicts)) return;
  $("#my-conflicts").replaceChildren(...conflicts.map(conflictCard));
  $("#no-conflicts").hidden = conflicts.length > 0;
}

async function resolve(c, winner, buttons) {
  for (const b of buttons) b.disabled = true;
  try {
    await call(`/api/v1/conflicts/${c.id}/resolve`, {method: "POST", body: JSON.stringify({winner})});
    say(`Entry ${c.entry_id}: ${winner === "jira" ? "JIRA's" : "TimeTracker's"} version kept.`);
    complain("");
  } catch (e) {
    complain(`Could not resolve the conflict of entry ${c.entry_id}: ${e.message}`);
    for (const b of buttons) b.disabled = false;
    return;
  }
  await Promise.all([loadConflicts(), loadEntries()]);
  $("#conflicts-heading").focus();  // the card (and its focused button) is gone: keep keyboard users in place
}

// -- the page ---------------------------------------------------------------------------------------------------

async function refresh() {
  try {
    await Promise.all([loadConflicts(), loadEntries(), loadConnections(), loadNotifications()]);
    $("#refreshed").textContent = "updated " + new Date().toLocaleTimeString();
    if ($("#message").dataset.kind === "load") complain("");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    complain("Could not load your data: " + e.message);
    $("#message").dataset.kind = "load";
  }
}

$("#more-entries").addEventListener("click", () => {
  shown = Math.min(1000, shown + PAGE);
  loadEntries();
});

export function start(who, options) {
  me = who;
  hooks = options;
  for (const k of Object.keys(rendered)) delete rendered[k];
  $("#person").hidden = false;
  afterConnecting();
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

export function stop() {
  if (timer) clearInterval(timer);
  timer = null;
  me = null;
}
