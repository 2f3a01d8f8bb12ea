// The operations dashboard: the views (views/*.js, one per kind of city data) on one map, with the shared state
// (state.js), the live streams (live.js) and the panels. Every view has the same interface:
//   key                    its layer (layer control id layer-<key>, name layer.<key>, what changed() reports)
//   load(valuesOnly)       fetch its data for state.index / state.at into state (valuesOnly: its Things stay)
//   live(obs, notify)      apply an incoming Observation if it is the view's; notify(thing) for each change shown
//   layer(map, hooks)      create its Leaflet layer; draw() brings it up to date with state
//   popup(id)              what a click (a hover for stations) shows, as a lit-html template
//   kpis()                 {total, silent: [names], worst?} for the header
// and optionally legend() (its part of the legend), points() (to fit the map to) and thingOf(datastream).
// Performance marks: "cityhub:data" (first data in) and "cityhub:render" (every layer drawn).

import { AlertsPanel } from "./alerts.js";
import { getJSON } from "./api.js";
import { renderControls, renderTime, wireControls } from "./controls.js";
import { DetailPanel } from "./detail.js";
import { applyI18n, setLang, t } from "./i18n.js";
import { renderKpis } from "./kpis.js";
import { observe, watchAlerts } from "./live.js";
import { content, createMap, fitBounds, layerControl, legendControl, openPopup, renderLegend } from "./map.js";
import { hub, setIndex, state } from "./state.js";
import * as air from "./views/air.js";
import * as traffic from "./views/traffic.js";
import * as transit from "./views/transit.js";
import * as water from "./views/water.js";

const VIEWS = [air, traffic, water, transit]; // the layer panel's order; drawn bottom to top in reverse
const $ = (sel) => document.querySelector(sel);
let map = null;

const alerts = new AlertsPanel(
  $("#alerts-list"),
  () => {
    kpis();
    if (map) air.draw(); // only the markers whose alert changed are rendered again
  },
  (a) => goTo(a),
);
const detail = new DetailPanel($("#detail"), {
  onClose: () => {
    state.selected = null;
    air.draw();
  },
});

function showError(e) {
  console.warn(e);
  const banner = $("#banner");
  banner.textContent = t("error.load", { detail: e?.message ?? String(e) });
  banner.hidden = false;
  setTimeout(() => (banner.hidden = true), 8000);
}

const showDetail = () => {
  if (state.selected !== null) detail.show(state.selected, { index: state.index, at: state.at }).catch(showError);
};

function select(thing) {
  state.selected = thing;
  air.draw();
  showDetail();
}

// The Thing an alert is about: its subject, or the Thing of its subject Datastream.
function thingOfSubject(s) {
  if (s?.type === "thing") return s.id;
  if (s?.type === "datastream") return VIEWS.map((v) => v.thingOf?.(s.id)).find((th) => th !== undefined);
  return undefined;
}

// Where a Thing is drawn, [lat, lon]: an air station, a water gauge, a traffic detector (the middle of its road).
function whereIs(thing) {
  const st = state.aq.get(thing);
  if (st?.coordinates) return [st.coordinates[1], st.coordinates[0]];
  for (const m of [state.water, state.traffic]) {
    const g = m.get(thing)?.geometry;
    const c = g?.type === "Point" ? g.coordinates : g?.type === "LineString" ? g.coordinates[g.coordinates.length >> 1] : null;
    if (c) return [c[1], c[0]];
  }
  return null;
}

// An alert clicked: fly to its subject and open it (an air station's detail panel, else its popup).
function goTo(alert) {
  const thing = thingOfSubject(alert.subject);
  const at = thing === undefined ? null : whereIs(thing);
  if (!map || !at) return;
  map.flyTo(at, Math.max(map.getZoom(), 13), { duration: 0.6 });
  if (state.aq.has(thing)) select(thing);
  else {
    const tpl = VIEWS.map((v) => (v === air ? null : v.popup?.(thing))).find((p) => p && p.strings);
    if (tpl) openPopup(map, at, tpl);
  }
  hub.picked = thing;
}

// Things with an active alert (subjects that are Things, or Datastreams of a view's Things) → the worst severity
// among them: a marker pulses in its colour, not red for an "info" guidance.
const SEVERITY_RANK = { info: 0, warning: 1, critical: 2 };
function alerting() {
  const out = new Map();
  for (const [s, severity] of alerts.severities()) {
    const thing = thingOfSubject(s);
    if (thing === undefined) continue;
    const was = out.get(thing);
    if (was === undefined || (SEVERITY_RANK[severity] ?? 0) > (SEVERITY_RANK[was] ?? 0)) out.set(thing, severity);
  }
  return out;
}

// Before the first data: no figures (not zeros).
const kpis = () => renderKpis($("#kpis"), state.updated ? VIEWS : [], alerts.count, select);

async function load(valuesOnly = false) {
  await Promise.all(VIEWS.map((v) => v.load(valuesOnly)));
  state.updated = new Date();
}

function draw() {
  hub.drawMs = {};
  for (const v of VIEWS) {
    const t0 = performance.now();
    v.draw();
    hub.drawMs[v.key] = performance.now() - t0;
  }
  map.fire("zoomend"); // station labels: shown when they fit
  renderLegend($("#legend"), VIEWS);
  kpis();
  renderTime();
}

// A burst of live changes is one header update.
let kpiTimer = null;
let detailTimer = null;
function afterLiveChange(key, thing) {
  state.updated = new Date();
  kpiTimer ??= setTimeout(() => {
    kpiTimer = null;
    kpis();
    renderTime();
  }, 100);
  if (key === air.key && thing === state.selected) {
    clearTimeout(detailTimer);
    detailTimer = setTimeout(showDetail, 1000);
  }
}

async function setTime(at) {
  state.at = at;
  renderTime();
  await load();
  draw();
  showDetail();
}

async function setIndexShown(index) {
  setIndex(index);
  await air.load();
  draw();
  showDetail();
}

function switchLang(lang) {
  setLang(lang);
  applyI18n();
  renderControls();
  document.title = `${t("title")} · ${t("subtitle")}`;
  map?.closePopup();
  if (map) draw();
  alerts.render();
  detail.render();
}

async function main() {
  switchLang(state.lang);
  alerts.render();
  kpis();
  // The data is asked for at once, while the map is set up.
  const apiP = getJSON("/api");
  const dataP = load();
  const api = await apiP;
  map = createMap($("#map"), api.map ?? {});
  const hooks = { select, alerting, content, openPopup: (latlng, tpl) => openPopup(map, latlng, tpl) };
  const layers = VIEWS.map((v) => ({ key: v.key, group: v.layer(map, hooks) }));
  for (const l of [...layers].reverse()) map.addLayer(l.group);
  layerControl(map, layers);
  legendControl(map);
  applyI18n();
  wireControls({
    onTime: (at) => setTime(at).catch(showError),
    onIndex: (index) => setIndexShown(index).catch(showError),
    onLang: switchLang,
  });
  await dataP;
  performance.mark("cityhub:data");
  // The final view before the layers are filled: everything is projected once.
  const points = VIEWS.flatMap((v) => v.points?.() ?? []);
  fitBounds(map, points);
  draw();
  // Every layer is drawn once the canvas renderers have painted (they draw on the next animation frame).
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  performance.mark("cityhub:render");
  hub.renderMs = performance.getEntriesByName("cityhub:render")[0].startTime;
  document.documentElement.dataset.rendered = "1";
  // Live from here (a browser gives a site six connections; the first loads needed them): ready once both
  // streams are connected and caught up. On every (re)connect the values are fetched again, nothing is missed.
  const live = new Promise((resolve) =>
    observe(VIEWS, {
      ready: () => {
        const catchUp = state.at ? Promise.resolve() : load(true).then(() => state.at || draw());
        catchUp.catch(showError).finally(resolve);
      },
      change: afterLiveChange,
      status: (ok) => {
        const dot = $("#conn");
        dot.classList.toggle("ok", ok);
        dot.title = t(ok ? "conn.live" : "conn.lost");
      },
    }),
  );
  const alertsReady = watchAlerts(api, alerts).catch((e) => {
    console.warn("alerts", e);
    alerts.setUnavailable();
  });
  await Promise.all([live, alertsReady]);
  hub.ready = true;
  document.documentElement.dataset.ready = "1";
  // Silence is the absence of events: re-checked every minute; everything reloaded every 5 minutes.
  setInterval(() => state.at || draw(), 60e3);
  setInterval(() => state.at || load().then(draw).catch(showError), 300e3);
}

main().catch((e) => {
  console.error("dashboard failed to start", e);
  showError(e);
});
