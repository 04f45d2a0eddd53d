// The page's credential (an API key or a user token, in this tab's sessionStorage only) and its calls to the API.
export const KEY = "ttsync.apiKey";

export const $ = (sel, root = document) => root.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const node = tag.includes(":") ? document.createElementNS("http://www.w3.org/2000/svg", tag.split(":")[1])
                                 : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.setAttribute("class", v); else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const credential = () => sessionStorage.getItem(KEY);
export const remember = (value) => sessionStorage.setItem(KEY, value);
export const forget = () => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export async function api(path, options = {}) {
  const headers = Object.assign({"Authorization": "Bearer " + credential(), "Accept": "application/json"},
                                options.body ? {"Content-Type": "application/json"} : {}, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, {headers, credentials: "omit"}));
  if (response.status === 204) return null;
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    let detail = response.statusText || ("HTTP " + response.status);
    if (body && typeof body.detail === "string") detail = body.detail;
    else if (body && Array.isArray(body.detail)) detail = body.detail.map((d) => d.msg).join("; ");
    throw new ApiError(response.status, detail);
  }
  return body;
}

// the same rendering of a number everywhere, so the browser test can compare with the API's figures
export function pct(x) { return x === null || x === undefined ? "–" : (x * 100).toFixed(1) + " %"; }
export function ms(x) { return x === null || x === undefined ? "–" : Math.round(x) + " ms"; }
export function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }
export function minutes(n) {
  const h = Math.floor(n / 60), m = n % 60;
  return h ? `${h} h ${String(m).padStart(2, "0")} min` : `${m} min`;
}

export function say(text) { $("#notice").textContent = text; }
export function complain(text) { $("#message").textContent = text; }
