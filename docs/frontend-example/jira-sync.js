// TimeTracker's frontend talking to the JIRA sync service (docs/frontend.md): a short-lived user token from
// TimeTracker's own backend, then plain fetch() calls to the sync API (CORS: this page's origin must be among the
// tenant's allowed_origins). No library, no build step.
const API = document.body.dataset.syncApi;       // e.g. https://sync.example.com
const TOKEN_URL = "/api/jira-sync-token";         // TimeTracker's backend: {"token", "user", "expires_at"}

let token = null;
let expiresAt = 0;
let user = null;

async function userToken() {
  if (token && Date.now() < expiresAt - 60_000) return token;
  const r = await fetch(TOKEN_URL, {credentials: "same-origin"});
  if (!r.ok) throw new Error("TimeTracker could not get a sync token (" + r.status + ")");
  const body = await r.json();
  ({token, user} = body);
  expiresAt = Date.parse(body.expires_at);
  return token;
}

async function sync(path, options = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = {"Authorization": "Bearer " + await userToken()};
    if (options.body) headers["Content-Type"] = "application/json";
    const r = await fetch(API + path, {...options, headers, credentials: "omit"});
    if (r.status === 401 && attempt === 0) { token = null; continue; }  // expired or revoked: get a fresh one
    const body = r.status === 204 ? null : await r.json();
    if (!r.ok) throw new Error(typeof body?.detail === "string" ? body.detail : "HTTP " + r.status);
    return body;
  }
  throw new Error("the sync service refused TimeTracker's token");
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  return td;
}

async function showEntries() {
  const page = await sync("/api/v1/entries?limit=100");
  const body = document.querySelector("#sync-entries tbody");
  body.replaceChildren();
  for (const e of page.items) {
    const row = document.createElement("tr");
    row.dataset.entry = e.id;
    row.append(cell(e.id), cell(e.ticket), cell(e.sync.status), cell(e.sync.last_error), cell(""));
    if (e.sync.status === "failed") {
      const retry = document.createElement("button");
      retry.type = "button";
      retry.textContent = "Retry";
      retry.addEventListener("click", async () => {
        await sync(`/api/v1/entries/${encodeURIComponent(e.id)}/retry`, {method: "POST"});
        await showEntries();
      });
      row.lastChild.append(retry);
    }
    body.append(row);
  }
  document.querySelector("#sync-entries").hidden = false;
}

async function showConnections() {
  const me = await sync("/api/v1/me");
  const connections = await sync(`/api/v1/users/${encodeURIComponent(me.user)}/connections`);
  const list = document.querySelector("#sync-connections");
  list.replaceChildren();
  for (const instance of me.jira_instances) {
    const c = connections.find((x) => x.jira_instance === instance.id);
    const item = document.createElement("li");
    item.dataset.instance = instance.id;
    item.dataset.status = c ? c.status : "not_connected";
    item.textContent = `${instance.name}: ${c ? c.status : "not connected"} `;
    const connect = document.createElement("button");
    connect.type = "button";
    connect.textContent = c && c.status === "connected" ? "Reconnect" : "Connect";
    connect.addEventListener("click", async () => {
      // JIRA asks the person to approve, then sends the browser back to this page
      const started = await sync(`/api/v1/jira-instances/${instance.id}/oauth/start`,
                                 {method: "POST", body: JSON.stringify({user: me.user, return_url: location.href})});
      location.assign(started.authorize_url);
    });
    item.append(connect);
    list.append(item);
  }
}

const status = document.querySelector("#sync-status");
try {
  await Promise.all([showEntries(), showConnections()]);
  status.textContent = `JIRA sync for ${user}`;
} catch (e) {
  // a browser that blocks the call (an origin the tenant did not allow) lands here with a TypeError
  status.textContent = "Could not reach the JIRA sync service: " + e.message;
  status.dataset.failed = "true";
}
