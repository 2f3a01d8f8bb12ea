// The operations dashboard: loads the city's state from the public API, draws it, and keeps it live through
// server-sent events. Performance marks: "cityhub:data" (first data in) and "cityhub:render" (every layer drawn).

import { AlertsPanel } from "./alerts.js";
import { getJSON, iso, postJSON, stream } from "./api.js";
import { DetailPanel } from "./detail.js";
import { categoryName, escapeHtml, fmtNum, fmtTime, textOn } from "./format.js";
import { applyI18n, getLang, setLang, t } from "./i18n.js";

const HOUR = 3600e3;
// A sensor is silent when its latest data is older than this (hourly stations report once an hour, detectors
// every 5 minutes).
const SILENT_MS = { aq: 3 * HOUR, traffic: 30 * 60e3, water: 3 * HOUR };
const INDEX_NAMES = { vn: "VN_AQI", us: "US AQI", us2012: "US AQI (2012)", kr: "KR CAI" };
// Traffic detectors and water gauges with their Locations and Datastreams, in one GeoJSON document.
const GEO_URL = "/api/v1/geo/things?kind=traffic%20detector&kind=water%20gauge";
// What a Datastream measures, from its unit: speed and flow of a detector, the level of a gauge.
const BY_UNIT = { "km/h": "speed", "veh/h": "flow", cm: "level", m: "level" };

const $ = (sel) => document.querySelector(sel);
const hub = (window.cityhub = { ready: false, changes: [], state: null });

const state = {
  index: stored("cityhub.index", ["vn", "us", "us2012", "kr"]) ?? "vn",
  at: null, // Date of the hour looked at, null: live
  aq: new Map(), // thing → body of /api/v1/aqi/stations
  traffic: new Map(), // thing → {thing, name, props, geometry, speedDs, flowDs, freeFlow, speed, flow, time}
  water: new Map(), // thing → {thing, name, props, geometry, levelDs, unit, level, time}
  dsKind: new Map(), // Datastream → [kind, thing]
  selected: null,
  updated: null,
  layers: null,
  live: false,
};
hub.state = state;

function stored(key, allowed) {
  try {
    const v = localStorage.getItem(key);
    return allowed.includes(v) ? v : null;
  } catch {
    return null;
  }
}

const refTime = () => (state.at ? state.at.getTime() + HOUR : Date.now());

// -- views ----------------------------------------------------------------------------------------------------------
const shortName = (name) => name.replace(/^(Trạm quan trắc|Cảm biến bụi|Trạm đo mực nước|Trạm thủy văn|Trạm)\s+/u, "");

function aqSilent(st) {
  if (!st.aqi || st.aqi.value === null || !st.hour) return true;
  return refTime() - new Date(st.hour).getTime() > SILENT_MS.aq + HOUR;
}

function aqView(st) {
  const a = st.aqi;
  const [lon, lat] = st.coordinates;
  return {
    thing: st.thing,
    name: st.name,
    short: shortName(st.name),
    lat,
    lon,
    value: a?.value ?? null,
    color: a?.category?.color ?? null,
    category: a?.category?.key ?? null,
    categoryName: categoryName(a?.category, getLang()),
    indexName: a?.index_name ?? INDEX_NAMES[state.index],
    silent: aqSilent(st),
    selected: state.selected === st.thing,
    alert: alertThings().has(st.thing),
  };
}

const hasCoords = (st) => Array.isArray(st.coordinates) && st.coordinates.length >= 2;

function trafficSilent(tr) {
  return tr.speed === null || tr.speed === undefined || (!state.at && Date.now() - tr.time > SILENT_MS.traffic);
}

function trafficClass(tr) {
  if (trafficSilent(tr) || !tr.freeFlow) return "none";
  const ratio = tr.speed / tr.freeFlow;
  if (ratio >= 0.75) return "free";
  if (ratio >= 0.5) return "slow";
  if (ratio >= 0.25) return "heavy";
  return "jam";
}

function waterSilent(w) {
  return w.level === null || w.level === undefined || (!state.at && Date.now() - w.time > SILENT_MS.water);
}

function waterState(w) {
  if (waterSilent(w)) return "none";
  const levels = w.props.alarmLevels;
  if (!levels) return "below";
  let out = "below";
  for (const k of ["I", "II", "III"]) if (k in levels && w.level >= levels[k]) out = k;
  return out;
}

function waterLabel(w) {
  if (w.level === null || w.level === undefined) return "–";
  const m = w.unit === "cm" ? w.level / 100 : w.level;
  return w.unit === "cm" || w.unit === "m" ? `${fmtNum(m, 2)} m` : `${fmtNum(w.level, 1)} ${w.unit ?? ""}`;
}

function waterView(w) {
  const [lon, lat] = w.geometry.coordinates;
  return { thing: w.thing, name: w.name, lat, lon, state: waterState(w), label: waterLabel(w) };
}

function alertThings() {
  const out = new Set();
  for (const s of alerts?.subjects() ?? []) {
    if (s.type === "thing") out.add(s.id);
    else if (s.type === "datastream") {
      const k = state.dsKind.get(s.id);
      if (k) out.add(k[1]);
    }
  }
  return out;
}

// -- loading --------------------------------------------------------------------------------------------------------
async function loadAq() {
  const at = state.at ? `&at=${encodeURIComponent(iso(state.at))}` : "";
  const body = await getJSON(`/api/v1/aqi/stations?index=${state.index}${at}`);
  state.aq = new Map(body.value.filter(hasCoords).map((s) => [s.thing, s]));
}

async function loadThings() {
  const geo = await getJSON(GEO_URL);
  state.traffic.clear();
  state.water.clear();
  state.dsKind.clear();
  for (const f of geo.features) {
    const id = f.id;
    const g = f.geometry;
    const props = f.properties.properties ?? {};
    if (!g?.type) continue;
    const base = { thing: id, name: f.properties.name, props, geometry: g, time: 0 };
    const streams = f.properties.Datastreams ?? [];
    const pick = (kind) => streams.find((d) => BY_UNIT[d.unit] === kind) ?? null;
    if (props.kind === "traffic detector") {
      const speed = pick("speed");
      const flow = pick("flow");
      const item = {
        ...base,
        speedDs: speed?.["@iot.id"] ?? null,
        flowDs: flow?.["@iot.id"] ?? null,
        freeFlow: Number(props.freeFlowSpeed) || null,
        speed: null,
        flow: null,
      };
      state.traffic.set(id, item);
      if (speed) state.dsKind.set(item.speedDs, ["speed", id]);
      if (flow) state.dsKind.set(item.flowDs, ["flow", id]);
    } else if (props.kind === "water gauge" && g.type === "Point") {
      const level = pick("level");
      state.water.set(id, { ...base, levelDs: level?.["@iot.id"] ?? null, unit: level?.unit ?? null, level: null });
      if (level) state.dsKind.set(level["@iot.id"], ["level", id]);
    }
  }
}

function applyValue(kind, thing, value, time) {
  const item = kind === "level" ? state.water.get(thing) : state.traffic.get(thing);
  if (!item || typeof value !== "number") return false;
  if (time < item.time && !state.at) return false; // a late Observation: the newer value stays
  if (kind === "speed") {
    item.speed = value;
    item.time = time;
  } else if (kind === "flow") item.flow = value;
  else {
    item.level = value;
    item.time = time;
  }
  return true;
}

async function loadValues() {
  const ids = [...state.dsKind.keys()];
  for (const item of state.traffic.values()) Object.assign(item, { speed: null, flow: null, time: 0 });
  for (const item of state.water.values()) Object.assign(item, { level: null, time: 0 });
  if (!ids.length) return;
  if (!state.at) {
    const body = await postJSON("/api/v1/latest", { datastreams: ids });
    for (const v of body.value) {
      const k = state.dsKind.get(v.datastream);
      if (k) applyValue(k[0], k[1], v.result, Date.parse(v.phenomenonTime));
    }
  } else {
    // The hour looked at: hourly means.
    const body = await postJSON("/api/v1/aggregate", {
      datastreams: ids,
      function: "avg",
      interval: "hour",
      start: iso(state.at),
      end: iso(new Date(state.at.getTime() + HOUR)),
    });
    for (const s of body.value) {
      const k = state.dsKind.get(s.datastream);
      if (k && s.value.length) applyValue(k[0], k[1], s.value[0], Date.parse(s.time[0]));
    }
  }
}

let metro = null;
async function fetchAll() {
  const things = loadThings().then(loadValues);
  await Promise.all([loadAq(), things, metro ? null : getJSON("/api/v1/transit/metro").then((m) => (metro = m))]);
  state.updated = new Date();
}

async function loadAll() {
  await fetchAll();
  drawAll(false);
}

// Values only (the Things stay): after the live stream connects, what changed while the page loaded.
async function catchUp() {
  if (state.at) return;
  await Promise.all([loadAq(), loadValues()]);
  if (state.at) return;
  state.updated = new Date();
  drawAll(false);
}

// -- drawing --------------------------------------------------------------------------------------------------------
function drawAll(first) {
  const { air, traffic, water, metroLayer } = state.layers;
  if (first) fitCity(); // before the layers are filled: everything is projected once, at the final view
  const t0 = performance.now();
  air.set([...state.aq.values()].map(aqView));
  const t1 = performance.now();
  traffic.set([...state.traffic.values()].map((tr) => ({ ...tr, cls: trafficClass(tr) })));
  const t2 = performance.now();
  water.set([...state.water.values()].filter((w) => w.geometry.type === "Point").map(waterView));
  if (first) metroLayer.set(metro);
  const t3 = performance.now();
  hub.drawMs = { air: t1 - t0, traffic: t2 - t1, rest: t3 - t2 };
  state.map.fire("zoomend"); // station labels: shown when they fit
  renderLegend();
  renderKpis();
  renderTime();
}

function fitCity() {
  // The city: stations, roads and metro (outlying gauges such as Sơn Tây stay on the map, a pan away).
  const pts = [];
  for (const st of state.aq.values()) pts.push([st.coordinates[1], st.coordinates[0]]);
  for (const tr of state.traffic.values()) {
    const c = tr.geometry.type === "Point" ? tr.geometry.coordinates : tr.geometry.coordinates.flat(1)[0];
    if (Array.isArray(c) && typeof c[0] === "number") pts.push([c[1], c[0]]);
  }
  for (const f of metro?.features ?? []) {
    if (f.geometry.type === "Point") pts.push([f.geometry.coordinates[1], f.geometry.coordinates[0]]);
  }
  if (!pts.length) for (const w of state.water.values()) pts.push([w.geometry.coordinates[1], w.geometry.coordinates[0]]);
  if (pts.length) state.map.fitBounds(window.L.latLngBounds(pts).pad(0.02), { maxZoom: 13, animate: false });
}

function renderLegend() {
  const cats = new Map();
  for (const st of state.aq.values()) {
    const c = st.aqi?.category;
    if (!c || st.aqi.value === null) continue;
    const cur = cats.get(c.key);
    if (!cur || st.aqi.value < cur.min) cats.set(c.key, { ...c, min: st.aqi.value });
  }
  const list = [...cats.values()].sort((a, b) => a.min - b.min).map((c) => ({ ...c, name: categoryName(c, getLang()) }));
  state.renderLegend($("#legend"), INDEX_NAMES[state.index], list);
}

function renderKpis() {
  const aq = [...state.aq.values()];
  const live = aq.filter((s) => !aqSilent(s));
  const worst = live.reduce((w, s) => (!w || s.aqi.value > w.aqi.value ? s : w), null);
  const badge = $("#kpi-worst-index");
  if (worst) {
    const c = worst.aqi.category.color;
    badge.textContent = fmtNum(worst.aqi.value);
    badge.style.background = c;
    badge.style.color = textOn(c);
    badge.title = categoryName(worst.aqi.category, getLang());
    $("#kpi-worst-name").textContent = shortName(worst.name);
    $("#kpi-worst").dataset.thing = worst.thing;
  } else {
    badge.textContent = "–";
    badge.style.background = "";
    badge.style.color = "";
    $("#kpi-worst-name").textContent = t("common.noData");
    delete $("#kpi-worst").dataset.thing;
  }
  const silent = [
    ...aq.filter(aqSilent).map((s) => s.name),
    ...[...state.traffic.values()].filter(trafficSilent).map((s) => s.name),
    ...[...state.water.values()].filter(waterSilent).map((s) => s.name),
  ];
  const total = aq.length + state.traffic.size + state.water.size;
  $("#kpi-reporting-value").textContent = `${fmtNum(total - silent.length)} / ${fmtNum(total)}`;
  $("#kpi-silent-value").textContent = fmtNum(silent.length);
  $("#kpi-silent").classList.toggle("warn", silent.length > 0);
  $("#kpi-silent").title = silent.length
    ? t("kpi.silentList", { names: silent.slice(0, 25).join(", ") + (silent.length > 25 ? "…" : "") })
    : "";
  const n = alerts.count;
  $("#kpi-alerts-value").textContent = n === null ? "–" : fmtNum(n);
  $("#kpi-alerts").classList.toggle("warn", n > 0);
}

function renderTime() {
  const slider = $("#time-slider");
  const live = state.at === null;
  document.body.classList.toggle("past", !live);
  $("#live-btn").classList.toggle("active", live);
  $("#live-btn").setAttribute("aria-pressed", String(live));
  $("#time-label").textContent = live
    ? t("time.liveAsOf", { time: fmtTime(state.updated ?? new Date(), { date: false, seconds: true }) })
    : t("time.asOf", { time: fmtTime(state.at) });
  if (live) slider.value = "0";
}

// -- selection and popups -------------------------------------------------------------------------------------------
function select(thing) {
  state.selected = thing;
  for (const st of state.aq.values()) state.layers.air.update(aqView(st));
  detail.show(thing, { index: state.index, at: state.at }).catch(showError);
}

function popup(latlng, html) {
  window.L.popup({ maxWidth: 320 }).setLatLng(latlng).setContent(html).openOn(state.map);
}

function trafficPopup(thing, latlng) {
  const tr = state.traffic.get(thing);
  if (!tr) return;
  const ratio = tr.speed !== null && tr.freeFlow ? `${fmtNum((100 * tr.speed) / tr.freeFlow)} %` : "–";
  popup(
    latlng,
    `<div class="popup" data-thing="${thing}"><strong>${escapeHtml(tr.name)}</strong><table>` +
      `<tr><th>${t("traffic.speed")}</th><td>${fmtNum(tr.speed)} km/h</td></tr>` +
      `<tr><th>${t("traffic.freeFlow")}</th><td>${fmtNum(tr.freeFlow)} km/h</td></tr>` +
      `<tr><th>${t("traffic.ratio")}</th><td>${ratio}</td></tr>` +
      `<tr><th>${t("traffic.flow")}</th><td>${fmtNum(tr.flow)} veh/h</td></tr>` +
      `<tr><th>${t("common.time")}</th><td>${tr.time ? fmtTime(tr.time) : "–"}</td></tr></table></div>`,
  );
}

function waterPopup(thing, latlng) {
  const w = state.water.get(thing);
  if (!w) return;
  const st = waterState(w);
  const levels = w.props.alarmLevels;
  const stateText =
    st === "none" ? t("common.noData") : st === "below" ? t(levels ? "water.below" : "water.noLevels") : t("water.alarm", { level: st });
  const lv = levels
    ? Object.entries(levels)
        .map(([k, v]) => `${k}: ${fmtNum(w.unit === "cm" ? v / 100 : v, 2)} m`)
        .join(" · ")
    : t("water.noLevels");
  popup(
    latlng,
    `<div class="popup" data-thing="${thing}"><strong>${escapeHtml(w.name)}</strong><table>` +
      `<tr><th>${t("water.level")}</th><td>${waterLabel(w)}</td></tr>` +
      `<tr><th>${t("water.state")}</th><td>${escapeHtml(stateText)}</td></tr>` +
      `<tr><th>${t("water.levels")}</th><td>${escapeHtml(lv)}</td></tr>` +
      `<tr><th>${t("common.time")}</th><td>${w.time ? fmtTime(w.time) : "–"}</td></tr></table></div>`,
  );
}

function metroPopup(p, latlng) {
  popup(
    latlng,
    `<div class="popup"><strong>${t("metro.station")} ${escapeHtml(p.name)}</strong><br>${escapeHtml(p.lineName)}` +
      `<br>${t(`metro.${p.status}`)}</div>`,
  );
}

// -- live updates ---------------------------------------------------------------------------------------------------
const pendingAq = new Set();
let aqTimer = null;

function scheduleAq(thing) {
  pendingAq.add(thing);
  if (!aqTimer) aqTimer = setTimeout(refreshAq, 30); // coalesce a burst (a station's six pollutants)
}

async function refreshAq() {
  const things = [...pendingAq];
  pendingAq.clear();
  aqTimer = null;
  if (state.at) return;
  try {
    let bodies;
    if (things.length > 20) {
      bodies = (await getJSON(`/api/v1/aqi/stations?index=${state.index}`)).value;
    } else {
      bodies = await Promise.all(things.map((th) => getJSON(`/api/v1/aqi/stations/${th}?index=${state.index}`)));
    }
    if (state.at) return;
    for (const st of bodies) {
      if (!hasCoords(st)) continue;
      state.aq.set(st.thing, st);
      state.layers.air.update(aqView(st));
      changed("aq", st.thing);
      if (state.selected === st.thing) refreshDetailSoon();
    }
    afterLiveChange();
  } catch (e) {
    console.warn("live refresh failed", e);
  }
}

let detailTimer = null;
function refreshDetailSoon() {
  clearTimeout(detailTimer);
  detailTimer = setTimeout(() => {
    if (state.selected !== null) detail.show(state.selected, { index: state.index, at: state.at }).catch(showError);
  }, 1000);
}

function changed(layer, thing) {
  const now = performance.now();
  for (const fn of hub.changes) fn(layer, thing, now);
}

let kpiTimer = null;
function afterLiveChange() {
  state.updated = new Date();
  if (!kpiTimer)
    kpiTimer = setTimeout(() => {
      kpiTimer = null;
      renderKpis();
      renderTime();
    }, 100);
}

function onObservation(o) {
  if (state.at) return; // looking at the past: the live state is reloaded on return
  const k = state.dsKind.get(o.datastream);
  const time = Date.parse(String(o.phenomenonTime).split("/")[0]);
  if (k) {
    if (!applyValue(k[0], k[1], o.result, time)) return;
    if (k[0] === "level") {
      state.layers.water.update(waterView(state.water.get(k[1])));
    } else if (k[0] === "speed") {
      state.layers.traffic.update(k[1], trafficClass(state.traffic.get(k[1])));
    }
    changed(k[0] === "level" ? "water" : "traffic", k[1]);
    afterLiveChange();
  } else if (state.aq.has(o.thing)) {
    scheduleAq(o.thing);
  }
}

let observations = null;
// The stream opens once the page is drawn (a browser gives a site six connections; the first loads need them);
// on connecting, and on every reconnect, the values are fetched again so that nothing in between is missed.
function connectLive(onReady) {
  observations = stream(
    "/api/v1/observations/stream",
    {
      ready: () => {
        catchUp()
          .catch(showError)
          .finally(() => onReady?.());
      },
      observation: onObservation,
      overflow: () => {
        observations.close();
        setTimeout(() => connectLive(), 1000);
      },
    },
    (ok) => {
      state.live = ok;
      const dot = $("#conn");
      dot.classList.toggle("ok", ok);
      dot.title = t(ok ? "conn.live" : "conn.lost");
    },
  );
}

// Alerts: the stream first, then (once it is open, and after each reconnect) the list of active alerts.
function startAlerts(api) {
  if (!api.extensions?.alerts) {
    alerts.setUnavailable();
    return Promise.resolve();
  }
  const list = () => getJSON("/api/v1/alerts?state=active&limit=500").then((body) => alerts.setAll(body.value));
  if (!api.extensions["alerts/stream"]) return list();
  return new Promise((resolve) => {
    stream("/api/v1/alerts/stream", { alert: (payload) => alerts.apply(payload) }, (ok) => {
      if (ok)
        list()
          .catch((e) => console.warn("alerts", e))
          .finally(resolve);
    });
  });
}

function onAlertsChange() {
  renderKpis();
  if (state.layers) for (const st of state.aq.values()) state.layers.air.update(aqView(st));
}

// -- time and controls ----------------------------------------------------------------------------------------------
async function setTime(at) {
  state.at = at;
  renderTime();
  await loadAll();
  if (state.selected !== null) await detail.show(state.selected, { index: state.index, at: state.at });
}

function wireControls() {
  const slider = $("#time-slider");
  let timer = null;
  slider.addEventListener("input", () => {
    const v = Number(slider.value);
    const at = v === 0 ? null : new Date(Math.floor(Date.now() / HOUR) * HOUR + v * HOUR);
    $("#time-label").textContent = at ? t("time.asOf", { time: fmtTime(at) }) : t("time.live");
    clearTimeout(timer);
    timer = setTimeout(() => setTime(at).catch(showError), 250);
  });
  $("#live-btn").addEventListener("click", () => {
    slider.value = "0";
    setTime(null).catch(showError);
  });
  const sel = $("#index-select");
  sel.value = state.index;
  sel.addEventListener("change", async () => {
    state.index = sel.value;
    try {
      localStorage.setItem("cityhub.index", state.index);
    } catch {
      // not remembered
    }
    await loadAq().catch(showError);
    drawAll(false);
    if (state.selected !== null) detail.show(state.selected, { index: state.index, at: state.at }).catch(showError);
  });
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.addEventListener("click", () => switchLang(b.dataset.lang));
  }
  $("#kpi-worst").addEventListener("click", () => {
    const th = Number($("#kpi-worst").dataset.thing);
    if (th) select(th);
  });
}

function switchLang(lang) {
  setLang(lang);
  applyI18n();
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
  }
  document.title = `${t("title")} · ${t("subtitle")}`;
  state.map?.closePopup();
  if (state.layers) drawAll(false);
  alerts.render();
  detail.render();
}

// -- start ----------------------------------------------------------------------------------------------------------
function showError(e) {
  console.warn(e);
  const banner = $("#banner");
  banner.textContent = t("error.load", { detail: e?.message ?? String(e) });
  banner.hidden = false;
  setTimeout(() => (banner.hidden = true), 8000);
}

const alerts = new AlertsPanel($("#alerts-list"), onAlertsChange);
const detail = new DetailPanel($("#detail"), {
  onClose: () => {
    state.selected = null;
    for (const st of state.aq.values()) state.layers.air.update(aqView(st));
  },
});

async function main() {
  switchLang(getLang());
  alerts.render();
  if (!window.L) {
    const banner = $("#banner");
    banner.textContent = t("error.vendor");
    banner.hidden = false;
    banner.classList.add("sticky");
    return;
  }
  // The data is asked for at once, while Leaflet and the map are set up.
  const apiP = getJSON("/api");
  const dataP = fetchAll();
  const mapMod = await import("./map.js");
  const api = await apiP;
  const { map, renderers } = mapMod.createMap($("#map"), api.map ?? {});
  state.map = map;
  state.renderLegend = mapMod.renderLegend;
  const air = new mapMod.AirLayer(map, select);
  const traffic = new mapMod.TrafficLayer(map, renderers.traffic, trafficPopup);
  const water = new mapMod.WaterLayer(map, waterPopup);
  const metroLayer = new mapMod.MetroLayer(map, renderers.metro, metroPopup);
  state.layers = { air, traffic, water, metroLayer };
  for (const l of [metroLayer, traffic, water, air]) map.addLayer(l.group);
  mapMod.layerControl(map, { aq: air, traffic, water, metro: metroLayer });
  mapMod.legendControl(map);
  applyI18n();
  wireControls();
  await dataP;
  performance.mark("cityhub:data");
  drawAll(true);
  // Every layer is drawn once the canvas renderers have painted (they draw on the next animation frame).
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  performance.mark("cityhub:render");
  hub.renderMs = performance.getEntriesByName("cityhub:render")[0].startTime;
  document.documentElement.dataset.rendered = "1";
  // Live from here: ready once both streams are connected and caught up.
  const live = new Promise((resolve) => connectLive(resolve));
  const alertsReady = startAlerts(api).catch((e) => {
    console.warn("alerts", e);
    alerts.setUnavailable();
  });
  await Promise.all([live, alertsReady]);
  hub.ready = true;
  document.documentElement.dataset.ready = "1";
  // Silence is the absence of events: re-check it every minute; reload everything every 5 minutes.
  setInterval(() => {
    if (state.at) return;
    for (const st of state.aq.values()) air.update(aqView(st));
    for (const tr of state.traffic.values()) traffic.update(tr.thing, trafficClass(tr));
    renderKpis();
  }, 60e3);
  setInterval(() => {
    if (!state.at) loadAll().catch(showError);
  }, 300e3);
}

main().catch((e) => {
  console.error("dashboard failed to start", e);
  showError(e);
});
