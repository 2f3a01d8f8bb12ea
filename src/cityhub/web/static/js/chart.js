// The 48-hour index chart as inline SVG: one bar per hour in its category's colour (what an operator reads at a
// glance), gaps where the index could not be computed. Small enough to draw by hand; no chart library needed.

import { fmtHour, fmtNum, fmtTime } from "./format.js";

const NS = "http://www.w3.org/2000/svg";
const W = 480;
const H = 150;
const PAD = { left: 34, right: 6, top: 8, bottom: 22 };

function el(name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// points: [{time: ISO, value: number, color: "#rrggbb", label: string}]; hours from start (Date), one slot each.
export function indexChart(points, start, hours, ariaLabel) {
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": ariaLabel });
  const max = Math.max(100, ...points.map((p) => p.value));
  const top = Math.ceil(max / 50) * 50;
  const step = top > 300 ? 100 : 50;
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const y = (v) => PAD.top + ih - (v / top) * ih;
  for (let v = 0; v <= top; v += step) {
    svg.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(el("text", { x: PAD.left - 4, y: y(v) + 3, class: "tick", "text-anchor": "end" }, fmtNum(v)));
  }
  const slot = iw / hours;
  const t0 = start.getTime();
  for (let h = 0; h < hours; h += 6) {
    const x = PAD.left + h * slot;
    svg.append(el("text", { x, y: H - 6, class: "tick" }, fmtHour(t0 + h * 3600e3)));
  }
  for (const p of points) {
    const i = Math.round((new Date(p.time).getTime() - t0) / 3600e3);
    if (i < 0 || i >= hours) continue;
    const bar = el("rect", {
      x: PAD.left + i * slot + 0.5,
      y: y(p.value),
      width: Math.max(1, slot - 1),
      height: Math.max(1, y(0) - y(p.value)),
      fill: p.color || "#999",
      class: "bar",
    });
    bar.append(el("title", {}, `${fmtTime(p.time)} · ${fmtNum(p.value)} ${p.label || ""}`));
    svg.append(bar);
  }
  svg.append(el("line", { x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0), class: "axis" }));
  return svg;
}
