// Air quality: every station's index (VN_AQI, US AQI or KR CAI) from /api/v1/aqi/stations. Which Things are
// stations is the hub's call, from their ObservedProperties (a known pollutant by definition URI or name); a
// pollutant Observation of a station re-reads its index, which the hub derives.

import * as L from "leaflet";
import { html, nothing, render } from "lit-html";
import { getJSON, iso } from "../api.js";
import { categoryName, fmtNum, textOn } from "../format.js";
import { t } from "../i18n.js";
import { SILENT_COLOR, silentSwatch, swatch } from "../map.js";
import { HOUR, INDEX_NAMES, refTime, state } from "../state.js";

// An hourly station is silent when its latest hour is older than this.
const SILENT_MS = 3 * HOUR;

const shortName = (name) => name.replace(/^(Trạm quan trắc|Cảm biến bụi|Trạm đo mực nước|Trạm thủy văn|Trạm)\s+/u, "");
const hasCoords = (st) => Array.isArray(st.coordinates) && st.coordinates.length >= 2;

function silent(st) {
  if (!st.aqi || st.aqi.value === null || !st.hour) return true;
  return refTime() - new Date(st.hour).getTime() > SILENT_MS + HOUR;
}

let hooks = null;
let group = null;
let theMap = null;
const markers = new Map(); // thing → L.Marker (marker.view: what it shows)

// alerting: the Things with an active alert.
function viewOf(st, alerting) {
  const a = st.aqi;
  const value = a?.value ?? null;
  const off = silent(st);
  return {
    thing: st.thing,
    name: st.name,
    short: shortName(st.name),
    value,
    category: a?.category?.key ?? "none",
    categoryName: categoryName(a?.category, state.lang),
    indexName: a?.index_name ?? INDEX_NAMES[state.index],
    color: off || value === null ? SILENT_COLOR : a.category.color,
    silent: off,
    selected: state.selected === st.thing,
    alert: alerting.get(st.thing) ?? null, // the worst severity of its active alerts
  };
}

const badge = (v) =>
  html`<div
      class="aq-marker ${v.silent ? "silent" : ""} ${v.selected ? "selected" : ""} ${v.alert ? `alerting alert-${v.alert}` : ""}"
      data-thing=${v.thing}
      data-category=${v.category}
      data-color=${v.color}
      style="background:${v.color};color:${textOn(v.color)}"
    >${v.value === null ? "–" : fmtNum(v.value)}</div>
    <div class="aq-name">${v.short}</div>`;

// What a marker shows, as one string: a marker whose view did not change is not rendered again (a draw after an
// alert or a selection touches the few markers that changed, not every one).
const shownKey = (v) =>
  `${v.value}|${v.color}|${v.category}|${v.silent}|${v.selected}|${v.alert}|${v.short}|${v.categoryName}|${v.indexName}`;

// The marker's element stays and only its attributes and text change (an observer sees the change in place).
function show(m) {
  const el = m.getElement();
  if (el) {
    render(badge(m.view), el);
    m.shown = shownKey(m.view);
  }
  if (m.isTooltipOpen()) m.getTooltip().update();
}

// A station's icon: its badge rendered into the element before Leaflet puts it on the map (a new element each
// time the layer is shown).
const StationIcon = L.DivIcon.extend({
  createIcon(oldIcon) {
    const el = L.DivIcon.prototype.createIcon.call(this, oldIcon);
    const m = this.options.marker;
    render(badge(m.view), el);
    m.shown = shownKey(m.view);
    return el;
  },
});

function add(v, coords) {
  const icon = new StationIcon({ className: "aq-icon", html: false, iconSize: null });
  const m = L.marker([coords[1], coords[0]], {
    icon,
    title: v.name,
    alt: v.name,
    riseOnHover: true,
    zIndexOffset: 1000,
  });
  icon.options.marker = m;
  m.view = v;
  m.shown = null;
  m.on("click", () => hooks.select(v.thing));
  m.bindTooltip(() => hooks.content(popup(v.thing)), { direction: "top", offset: [0, -14] });
  markers.set(v.thing, m);
  group.addLayer(m);
}

function update(st, alerting) {
  const m = markers.get(st.thing);
  if (!m) return add(viewOf(st, alerting), st.coordinates);
  m.view = viewOf(st, alerting);
  if (m.shown !== shownKey(m.view) || m.isTooltipOpen()) show(m);
}

export const key = "aq";

export async function load() {
  const at = state.at ? `&at=${encodeURIComponent(iso(state.at))}` : "";
  const body = await getJSON(`/api/v1/aqi/stations?index=${state.index}${at}`);
  state.aq = new Map(body.value.filter(hasCoords).map((s) => [s.thing, s]));
}

export function layer(map, h) {
  hooks = h;
  theMap = map;
  group = L.layerGroup();
  map.on("zoomend moveend", declutter);
  return group;
}

// Collision-aware markers and names, placed worst station first: a marker that would overlap one already placed
// is drawn as a small dot (its figure in its tooltip), and a name that would cover a placed name or marker is left
// out, so that at city scale (the whole of Hà Nội at 1280×720) every figure shown can be read.
const MARKER_PX = 34; // --marker, 2.1rem
function declutter() {
  if (!theMap) return;
  const placed = [];
  const names = [];
  const overlaps = (a, b) => !(a[2] < b[0] || a[0] > b[2] || a[3] < b[1] || a[1] > b[3]);
  const order = [...markers.values()].sort(
    (a, b) => Number(b.view.selected) - Number(a.view.selected) || (b.view.value ?? -1) - (a.view.value ?? -1),
  );
  for (const m of order) {
    const el = m.getElement();
    if (!el) continue;
    const p = theMap.latLngToContainerPoint(m.getLatLng());
    const crowded = placed.some((q) => Math.abs(q.x - p.x) < MARKER_PX && Math.abs(q.y - p.y) < MARKER_PX);
    el.classList.toggle("crowded", crowded);
    let hidden = crowded;
    if (!crowded) {
      placed.push(p);
      const w = el.querySelector(".aq-name")?.offsetWidth || m.view.short.length * 7;
      const box = [p.x - w / 2, p.y + MARKER_PX / 2, p.x + w / 2, p.y + MARKER_PX / 2 + 15];
      const onMarker = placed.some((q) => q !== p && overlaps(box, [q.x - 17, q.y - 17, q.x + 17, q.y + 17]));
      hidden = onMarker || names.some((b) => overlaps(box, b));
      if (!hidden) names.push(box);
    }
    el.classList.toggle("name-hidden", hidden);
  }
}

// Markers change in place: a new index, a selection, an alert, silence.
export function draw() {
  const alerting = hooks.alerting();
  for (const st of state.aq.values()) update(st, alerting);
  for (const [thing, m] of markers) {
    if (!state.aq.has(thing)) {
      group.removeLayer(m);
      markers.delete(thing);
    }
  }
  declutter();
}

// -- live: a burst of Observations (a station's six pollutants) is one re-read per station ----------------------
const pending = new Set();
let timer = null;

export function live(o, notify) {
  if (!state.aq.has(o.thing)) return;
  pending.add(o.thing);
  if (!timer) timer = setTimeout(() => refresh(notify).catch((e) => console.warn("live refresh failed", e)), 30);
}

async function refresh(notify) {
  const things = [...pending];
  pending.clear();
  timer = null;
  if (state.at) return;
  const bodies =
    things.length > 20
      ? (await getJSON(`/api/v1/aqi/stations?index=${state.index}`)).value
      : await Promise.all(things.map((th) => getJSON(`/api/v1/aqi/stations/${th}?index=${state.index}`)));
  if (state.at) return;
  const alerting = hooks.alerting();
  for (const st of bodies) {
    if (!hasCoords(st)) continue;
    state.aq.set(st.thing, st);
    update(st, alerting);
    notify(st.thing);
  }
}

export function popup(thing) {
  const m = markers.get(thing);
  if (!m) return nothing;
  const v = m.view;
  return html`<strong>${v.name}</strong><br />${v.indexName}:
    ${v.value === null ? t("common.noData") : `${fmtNum(v.value)} · ${v.categoryName}`}
    ${v.silent ? html`<br />${t("legend.silent")}` : nothing}`;
}

export function kpis() {
  const all = [...state.aq.values()];
  const worst = all.filter((s) => !silent(s)).reduce((w, s) => (!w || s.aqi.value > w.aqi.value ? s : w), null);
  return {
    total: all.length,
    silent: all.filter(silent).map((s) => s.name),
    worst: worst && {
      thing: worst.thing,
      name: shortName(worst.name),
      value: worst.aqi.value,
      color: worst.aqi.category.color,
      category: categoryName(worst.aqi.category, state.lang),
    },
  };
}

// The categories on the map now, in index order.
export function legend() {
  const cats = new Map();
  for (const st of state.aq.values()) {
    const c = st.aqi?.category;
    if (!c || st.aqi.value === null) continue;
    const cur = cats.get(c.key);
    if (!cur || st.aqi.value < cur.min) cats.set(c.key, { ...c, min: st.aqi.value });
  }
  const list = [...cats.values()].sort((a, b) => a.min - b.min);
  return html`<h3>${INDEX_NAMES[state.index]}</h3>
    <ul>
      ${list.map((c) => swatch(c.color, categoryName(c, state.lang)))}${silentSwatch()}
    </ul>`;
}

export const points = () => [...state.aq.values()].map((st) => [st.coordinates[1], st.coordinates[0]]);
