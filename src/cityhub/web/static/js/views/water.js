// Water levels: gauges (Point Locations) with their level and alarm state, from the Thing's
// `properties.alarmLevels` (e.g. the Red River levels of Decision 05/2020/QĐ-TTg).

import * as L from "leaflet";
import { html, nothing, render } from "lit-html";
import { fmtNum, fmtTime, textOn } from "../format.js";
import { t } from "../i18n.js";
import { SILENT_COLOR, swatch } from "../map.js";
import { HOUR, state } from "../state.js";
import { findThings, loadValues, obsTime } from "./things.js";

// Gauges report hourly.
const SILENT_MS = 3 * HOUR;
export const COLORS = { below: "#1565c0", I: "#f9a825", II: "#ef6c00", III: "#c62828", none: SILENT_COLOR };
export const PROPERTIES = [{ role: "level", definition: "https://cityhub.hanoi/def/WaterLevel", name: "Water level" }];

const streams = new Map(); // Datastream → thing
let hooks = null;
let group = null;
const markers = new Map(); // thing → L.Marker
let loaded = 0; // gauges loaded so many times…
let drawn = -1; // … and drawn

function silent(w) {
  return w.level === null || w.level === undefined || (!state.at && Date.now() - w.time > SILENT_MS);
}

function stateOf(w) {
  if (silent(w)) return "none";
  const levels = w.props.alarmLevels;
  let out = "below";
  for (const k of ["I", "II", "III"]) if (levels && k in levels && w.level >= levels[k]) out = k;
  return out;
}

// Levels in metres when the unit is a length (gauges often report centimetres).
const metres = (w, v) => (w.unit === "cm" ? v / 100 : v);
function label(w) {
  if (w.level === null || w.level === undefined) return "–";
  return w.unit === "cm" || w.unit === "m"
    ? `${fmtNum(metres(w, w.level), 2)} m`
    : `${fmtNum(w.level, 1)} ${w.unit ?? ""}`;
}

function apply(ds, value, time) {
  const w = state.water.get(streams.get(ds));
  if (!w || typeof value !== "number") return false;
  if (time < w.time && !state.at) return false; // a late Observation: the newer value stays
  w.level = value;
  w.time = time;
  return true;
}

function marker(w) {
  const st = stateOf(w);
  const bg = COLORS[st];
  return html`<div class="water-marker" data-thing=${w.thing} data-state=${st} style="background:${bg};color:${textOn(bg)}"
    ><span class="wave">≈</span>${label(w)}</div
  >`;
}

function show(thing) {
  const el = markers.get(thing)?.getElement();
  if (el) render(marker(state.water.get(thing)), el);
}

export const key = "water";

// valuesOnly: the gauges stay (after the live stream connects: what changed while the page loaded).
export async function load(valuesOnly = false) {
  if (valuesOnly) {
    for (const w of state.water.values()) Object.assign(w, { level: null, time: 0 });
    return loadValues([...streams.keys()], apply);
  }
  const things = await findThings(PROPERTIES);
  state.water.clear();
  streams.clear();
  for (const { streams: by, ...base } of things) {
    if (base.geometry.type !== "Point") continue;
    const ds = by.level;
    state.water.set(base.thing, {
      ...base,
      levelDs: ds?.["@iot.id"] ?? null,
      unit: ds?.unit ?? null,
      level: null,
      time: 0,
    });
    if (ds) streams.set(ds["@iot.id"], base.thing);
  }
  loaded++;
  await loadValues([...streams.keys()], apply);
}

export function layer(map, h) {
  hooks = h;
  group = L.layerGroup();
  return group;
}

// New gauges: new markers; the same gauges: their markers change in place.
export function draw() {
  if (drawn === loaded) {
    for (const thing of markers.keys()) show(thing);
    return;
  }
  drawn = loaded;
  group.clearLayers();
  markers.clear();
  for (const w of state.water.values()) {
    const [lon, lat] = w.geometry.coordinates;
    const icon = L.divIcon({ className: "water-icon", html: "", iconSize: null });
    const m = L.marker([lat, lon], { icon, title: w.name, alt: w.name, zIndexOffset: 500 });
    m.on("add", () => show(w.thing));
    m.on("click", () => hooks.openPopup(m.getLatLng(), popup(w.thing)));
    markers.set(w.thing, m);
    group.addLayer(m);
  }
}

export function live(o, notify) {
  const thing = streams.get(o.datastream);
  if (thing === undefined || !apply(o.datastream, o.result, obsTime(o))) return;
  show(thing);
  notify(thing);
}

export function popup(thing) {
  const w = state.water.get(thing);
  if (!w) return nothing;
  const st = stateOf(w);
  const levels = w.props.alarmLevels;
  const stateText =
    st === "none"
      ? t("common.noData")
      : st === "below"
        ? t(levels ? "water.below" : "water.noLevels")
        : t("water.alarm", { level: st });
  const lv = levels
    ? Object.entries(levels)
        .map(([k, v]) => `${k}: ${fmtNum(metres(w, v), 2)} m`)
        .join(" · ")
    : t("water.noLevels");
  return html`<div class="popup" data-thing=${thing}>
    <strong>${w.name}</strong>
    <table>
      <tr><th>${t("water.level")}</th><td>${label(w)}</td></tr>
      <tr><th>${t("water.state")}</th><td>${stateText}</td></tr>
      <tr><th>${t("water.levels")}</th><td>${lv}</td></tr>
      <tr><th>${t("common.time")}</th><td>${w.time ? fmtTime(w.time) : "–"}</td></tr>
    </table>
  </div>`;
}

export function kpis() {
  const all = [...state.water.values()];
  return { total: all.length, silent: all.filter(silent).map((w) => w.name) };
}

export const legend = () =>
  html`<h3>${t("layer.water")}</h3>
    <ul>
      ${swatch(COLORS.below, t("water.below"))}
      ${["I", "II", "III"].map((k) => swatch(COLORS[k], t("water.alarm", { level: k })))}
    </ul>`;

export const thingOf = (ds) => streams.get(ds);

// Every gauge is in the first view, the outlying Sơn Tây one too: an operator must see the river's gauges.
export const points = () => [...state.water.values()].map((w) => [w.geometry.coordinates[1], w.geometry.coordinates[0]]);
