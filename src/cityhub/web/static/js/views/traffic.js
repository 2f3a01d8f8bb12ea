// Traffic: detectors or road segments (Point or LineString Locations) coloured by speed / free-flow speed
// (`properties.freeFlowSpeed`), on a canvas of their own: there may be thousands.

import * as L from "leaflet";
import { html, nothing } from "lit-html";
import { fmtNum, fmtTime } from "../format.js";
import { t } from "../i18n.js";
import { SILENT_COLOR, canvasPane, swatch, toLatLngs } from "../map.js";
import { state } from "../state.js";
import { findThings, loadValues, obsTime } from "./things.js";

// Detectors report every 5 minutes.
const SILENT_MS = 30 * 60e3;
export const COLORS = { free: "#1a9850", slow: "#f2b600", heavy: "#e8590c", jam: "#a50026", none: SILENT_COLOR };
export const PROPERTIES = [
  { role: "speed", definition: "http://qudt.org/vocab/quantitykind/Speed", name: "Traffic speed" },
  { role: "flow", definition: "https://cityhub.hanoi/def/TrafficFlow", name: "Traffic flow" },
];

const streams = new Map(); // Datastream → [role, thing]
let hooks = null;
let group = null;
let renderer = null;
const shapes = new Map(); // thing → path (path.cls: its class now)
let loaded = 0; // Things loaded so many times…
let drawn = -1; // … and drawn

function silent(tr) {
  return tr.speed === null || tr.speed === undefined || (!state.at && Date.now() - tr.time > SILENT_MS);
}

function classOf(tr) {
  if (silent(tr) || !tr.freeFlow) return "none";
  const ratio = tr.speed / tr.freeFlow;
  if (ratio >= 0.75) return "free";
  if (ratio >= 0.5) return "slow";
  if (ratio >= 0.25) return "heavy";
  return "jam";
}

function apply(ds, value, time) {
  const [role, thing] = streams.get(ds) ?? [];
  const tr = state.traffic.get(thing);
  if (!tr || typeof value !== "number") return false;
  if (role === "flow") {
    tr.flow = value; // shown in the popup; the colour follows the speed
    return true;
  }
  if (time < tr.time && !state.at) return false; // a late Observation: the newer value stays
  tr.speed = value;
  tr.time = time;
  return true;
}

function shapeOf(tr, cls) {
  const g = tr.geometry;
  const color = COLORS[cls];
  if (g.type === "Point") {
    const [lon, lat] = g.coordinates;
    return L.circleMarker([lat, lon], {
      renderer,
      radius: 6,
      weight: 2,
      color: "#fff",
      fillColor: color,
      fillOpacity: 1,
    });
  }
  if (g.type === "LineString" || g.type === "MultiLineString") {
    const latlngs = g.type === "LineString" ? toLatLngs(g.coordinates) : g.coordinates.map(toLatLngs);
    return L.polyline(latlngs, { renderer, color, weight: 5, opacity: 0.9, lineCap: "round" });
  }
  return null;
}

function recolour(thing) {
  const s = shapes.get(thing);
  const cls = classOf(state.traffic.get(thing));
  if (!s || s.cls === cls) return false;
  s.cls = cls;
  s.setStyle(s instanceof L.CircleMarker ? { fillColor: COLORS[cls] } : { color: COLORS[cls] });
  return true;
}

export const key = "traffic";

// valuesOnly: the Things stay (after the live stream connects: what changed while the page loaded).
export async function load(valuesOnly = false) {
  if (valuesOnly) {
    for (const tr of state.traffic.values()) Object.assign(tr, { speed: null, flow: null, time: 0 });
    return loadValues([...streams.keys()], apply);
  }
  const things = await findThings(PROPERTIES);
  state.traffic.clear();
  streams.clear();
  for (const { streams: by, ...base } of things) {
    const item = {
      ...base,
      speedDs: by.speed?.["@iot.id"] ?? null,
      flowDs: by.flow?.["@iot.id"] ?? null,
      freeFlow: Number(base.props.freeFlowSpeed) || null,
      speed: null,
      flow: null,
      time: 0,
    };
    state.traffic.set(item.thing, item);
    if (item.speedDs !== null) streams.set(item.speedDs, ["speed", item.thing]);
    if (item.flowDs !== null) streams.set(item.flowDs, ["flow", item.thing]);
  }
  loaded++;
  await loadValues([...streams.keys()], apply);
}

export function layer(map, h) {
  hooks = h;
  renderer = canvasPane(map, "traffic", 420);
  group = L.layerGroup();
  return group;
}

// New Things: new paths (cheap on canvas); the same Things: recoloured where their class changed (silence is
// the absence of Observations, so this is also how a silent segment turns grey).
export function draw() {
  if (drawn === loaded) {
    for (const thing of state.traffic.keys()) recolour(thing);
    return;
  }
  drawn = loaded;
  group.clearLayers();
  shapes.clear();
  for (const tr of state.traffic.values()) {
    const cls = classOf(tr);
    const shape = shapeOf(tr, cls);
    if (!shape) continue;
    shape.cls = cls;
    shape.on("click", (e) => hooks.openPopup(e.latlng, popup(tr.thing)));
    shapes.set(tr.thing, shape);
    group.addLayer(shape);
  }
}

export function live(o, notify) {
  const [, thing] = streams.get(o.datastream) ?? [];
  if (thing === undefined || !apply(o.datastream, o.result, obsTime(o))) return;
  recolour(thing);
  notify(thing);
}

export function popup(thing) {
  const tr = state.traffic.get(thing);
  if (!tr) return nothing;
  const ratio = tr.speed !== null && tr.freeFlow ? `${fmtNum((100 * tr.speed) / tr.freeFlow)} %` : "–";
  return html`<div class="popup" data-thing=${thing}>
    <strong>${tr.name}</strong>
    <table>
      <tr><th>${t("traffic.speed")}</th><td>${fmtNum(tr.speed)} km/h</td></tr>
      <tr><th>${t("traffic.freeFlow")}</th><td>${fmtNum(tr.freeFlow)} km/h</td></tr>
      <tr><th>${t("traffic.ratio")}</th><td>${ratio}</td></tr>
      <tr><th>${t("traffic.flow")}</th><td>${fmtNum(tr.flow)} veh/h</td></tr>
      <tr><th>${t("common.time")}</th><td>${tr.time ? fmtTime(tr.time) : "–"}</td></tr>
    </table>
  </div>`;
}

export function kpis() {
  const all = [...state.traffic.values()];
  return { total: all.length, silent: all.filter(silent).map((tr) => tr.name) };
}

export const legend = () =>
  html`<h3>${t("legend.traffic")}</h3>
    <ul>
      ${["free", "slow", "heavy", "jam"].map((k) => swatch(COLORS[k], t(`traffic.${k}`), "line"))}
    </ul>`;

export const thingOf = (ds) => streams.get(ds)?.[1];

export function points() {
  const out = [];
  for (const tr of state.traffic.values()) {
    const c = tr.geometry.type === "Point" ? tr.geometry.coordinates : tr.geometry.coordinates.flat(1)[0];
    if (Array.isArray(c) && typeof c[0] === "number") out.push([c[1], c[0]]);
  }
  return out;
}
