// Small SVG charts drawn with DOM calls (no library, no build step, nothing inline for the CSP to refuse).
// Colours and strokes come from dashboard.css through class names. Every chart is an <svg role="img"> with a
// sentence saying what it shows, and its <figure> carries data-chart / data-points for tests.
import {el} from "./api.js";

const W = 320, H = 100, LEFT = 34, RIGHT = 6, TOP = 8, BOTTOM = 16;
const PLOT_W = W - LEFT - RIGHT, PLOT_H = H - TOP - BOTTOM;

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function short(value) {
  if (value >= 1000) return (value / 1000).toFixed(value >= 10000 ? 0 : 1) + "k";
  return Number.isInteger(value) ? String(value) : value.toFixed(value < 1 ? 2 : 1);
}

function hhmm(iso) {
  const d = new Date(iso);
  return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
}

function frame(times, max, unit) {
  const svg = el("svg:svg", {class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", preserveAspectRatio: "none"});
  svg.append(el("svg:line", {class: "axis", x1: LEFT, y1: TOP + PLOT_H, x2: W - RIGHT, y2: TOP + PLOT_H}));
  svg.append(el("svg:line", {class: "axis", x1: LEFT, y1: TOP, x2: LEFT, y2: TOP + PLOT_H}));
  svg.append(el("svg:text", {x: LEFT - 3, y: TOP + 7, "text-anchor": "end"}, short(max) + (unit || "")));
  svg.append(el("svg:text", {x: LEFT - 3, y: TOP + PLOT_H, "text-anchor": "end"}, "0"));
  if (times.length) {
    svg.append(el("svg:text", {x: LEFT, y: H - 3}, hhmm(times[0])));
    svg.append(el("svg:text", {x: W - RIGHT, y: H - 3, "text-anchor": "end"}, "now"));
  }
  return svg;
}

const x = (i, n) => LEFT + (n <= 1 ? PLOT_W : (i / (n - 1)) * PLOT_W);
const y = (v, max) => TOP + PLOT_H - (Math.min(v, max) / max) * PLOT_H;

function legend(items) {
  return el("div", {class: "legend", "aria-hidden": "true"},
            items.map(([cls, label]) => el("span", {}, el("span", {class: "key " + cls}), label)));
}

function figure(id, title, explain, svg, summary, points, legendItems) {
  svg.setAttribute("aria-label", `${title}: ${summary}`);
  svg.prepend(el("svg:title", {}, `${title}: ${summary}`));
  return el("figure", {class: "chart", "data-chart": id, "data-points": points},
            el("figcaption", {}, el("strong", {}, title), explain ? " — " + explain : ""),
            svg, legendItems && legendItems.length ? legend(legendItems) : null);
}

// shaded spans where `flags[i]` is true (e.g. the circuit was open)
function shade(svg, flags) {
  const n = flags.length;
  flags.forEach((on, i) => {
    if (!on) return;
    const w = PLOT_W / Math.max(1, n - 1);
    svg.append(el("svg:rect", {class: "open", x: Math.max(LEFT, x(i, n) - w / 2), y: TOP, width: w, height: PLOT_H}));
  });
}

/** Lines over time. series: [{label, values: (number|null)[], cls}]; a null breaks the line (nothing known). */
export function lineChart({id, title, explain, times, series, limit, unit, shaded, summary}) {
  const values = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  const max = niceMax(Math.max(0, ...values, limit ? limit.value * 1.1 : 0));
  const svg = frame(times, max, unit);
  if (shaded) shade(svg, shaded.flags);
  if (limit) {
    const ly = y(limit.value, max);
    svg.append(el("svg:line", {class: "limit", x1: LEFT, y1: ly, x2: W - RIGHT, y2: ly}));
  }
  for (const s of series) {
    let d = "", count = 0;
    const n = s.values.length, known = (i) => s.values[i] !== null && s.values[i] !== undefined;
    s.values.forEach((v, i) => {
      if (!known(i)) return;
      const px = x(i, n).toFixed(1), py = y(v, max).toFixed(1);
      d += `${known(i - 1) ? "L" : "M"}${px},${py}`;
      count += 1;
      // a point with no neighbour draws no line: mark it
      if (!known(i - 1) && !known(i + 1)) svg.append(el("svg:circle", {class: s.cls, cx: px, cy: py, r: 1.8}));
    });
    svg.append(el("svg:path", {class: "line " + s.cls, d: d || "M0,0", "data-series": s.label, "data-points": count}));
  }
  const legendItems = series.map((s) => [s.cls, s.label]);
  if (limit) legendItems.push(["limit", limit.label]);
  if (shaded) legendItems.push(["open", shaded.label]);
  return figure(id, title, explain, svg, summary, values.length, series.length > 1 || limit || shaded ? legendItems : null);
}

/** Stacked bars of counts per bucket. kinds: [{label, values: number[], cls}]. */
export function barChart({id, title, explain, times, kinds, summary}) {
  const n = times.length;
  const totals = times.map((_, i) => kinds.reduce((sum, k) => sum + (k.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const svg = frame(times, max);
  const w = Math.max(1, PLOT_W / Math.max(1, n) - 1);
  let bars = 0;
  for (let i = 0; i < n; i++) {
    let base = 0;
    for (const k of kinds) {
      const v = k.values[i] || 0;
      if (!v) continue;
      const top = y(base + v, max), bottom = y(base, max);
      svg.append(el("svg:rect", {class: k.cls, x: (LEFT + (i / n) * PLOT_W).toFixed(1), y: top.toFixed(1),
                                 width: w.toFixed(1), height: Math.max(0.5, bottom - top).toFixed(1),
                                 "data-kind": k.label}));
      base += v;
      bars += 1;
    }
  }
  return figure(id, title, explain, svg, summary, bars, kinds.map((k) => [k.cls, k.label]));
}
