// The dashboard page: one URL for two kinds of visitor. With the tenant's API key it is the operators' view
// (operator.js); with a user token (TimeTracker links to /dashboard#token=…) it is that person's page (person.js).
import {$, ApiError, api, complain, credential, forget, remember, say} from "./api.js";
import * as operator from "./operator.js";
import * as person from "./person.js";

let view = null;

function takeTokenFromFragment() {
  // the fragment never reaches a server, a log or a Referer; it is dropped from the address bar at once
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  if (token) remember(token);
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
}

function show(signedIn) {
  $("#intro").hidden = signedIn;
  $("#login").hidden = signedIn;
  $("#logout").hidden = !signedIn;
  $("#who").hidden = !signedIn;
}

export function logout(message) {
  forget();
  if (view) view.stop();
  view = null;
  $("#content").hidden = true;
  $("#person").hidden = true;
  show(false);
  $("#refreshed").textContent = "";
  $("#who").textContent = "";
  say("");
  complain(message || "");
}

async function start() {
  if (!credential()) return;
  let me;
  try {
    me = await api("/api/v1/me");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      logout(e.message.includes("expired") ? "Your session has expired: open this page again from TimeTracker."
                                           : "That key or token was not accepted.");
    } else {
      complain("Could not reach the sync service: " + e.message);
    }
    return;
  }
  complain("");
  show(true);
  if (me.kind === "user_token") {
    $("#who").textContent = `Signed in as ${me.user} (${me.tenant.name}) until ` +
      new Date(me.expires_at).toLocaleTimeString();
    $("#logout").textContent = "Sign out";
    view = person;
  } else {
    $("#who").textContent = `Tenant ${me.tenant.name} (API key)`;
    $("#logout").textContent = "Forget key";
    view = operator;
  }
  view.start(me, {onUnauthorized: (e) => logout(e.message.includes("expired")
    ? "Your session has expired: open this page again from TimeTracker." : "That key or token is no longer accepted.")});
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = $("#api-key").value.trim();
  if (!value) return;
  remember(value);
  $("#api-key").value = "";
  start();
});
$("#logout").addEventListener("click", () => logout());
takeTokenFromFragment();
start();
