// Transit: metro lines 2A and 3 and their stations (operating, under construction, planned) from the hub's fact
// table, /api/v1/transit/metro. No sensors: nothing live, nothing to count.

import * as L from "leaflet";
import { html, nothing } from "lit-html";
import { t } from "../i18n.js";
import { canvasPane, toLatLngs } from "../map.js";
import { getJSON } from "../api.js";
import { state } from "../state.js";

const DASH = { operating: null, construction: "8 6", planned: "2 6" };
let hooks = null;
let group = null;
let renderer = null;
let drawn = null; // the GeoJSON on the map

export const key = "metro";

// The lines do not change while the page is open: fetched once.
export async function load() {
  state.metro ??= await getJSON("/api/v1/transit/metro");
}

export function layer(map, h) {
  hooks = h;
  renderer = canvasPane(map, "metro", 410);
  group = L.layerGroup();
  return group;
}

export function draw() {
  if (drawn === state.metro) return;
  drawn = state.metro;
  group.clearLayers();
  for (const f of state.metro?.features ?? []) {
    const p = f.properties;
    if (f.geometry.type === "LineString") {
      const opacity = p.status === "operating" ? 0.95 : 0.7;
      const style = { renderer, color: p.color, weight: 4, opacity, dashArray: DASH[p.status], interactive: false };
      group.addLayer(L.polyline(toLatLngs(f.geometry.coordinates), style));
    } else if (f.geometry.type === "Point") {
      const [lon, lat] = f.geometry.coordinates;
      const fillColor = p.status === "operating" ? "#fff" : "#e9ecef";
      const m = L.circleMarker([lat, lon], {
        renderer,
        radius: 4.5,
        weight: 2.5,
        color: p.color,
        fillColor,
        fillOpacity: 1,
      });
      m.on("click", (e) => hooks.openPopup(e.latlng, popup(p)));
      m.bindTooltip(() => hooks.content(html`${t("metro.station")} ${p.name}`), { direction: "top" });
      group.addLayer(m);
    }
  }
}

export function live() {}

// station: the properties of a station Feature.
export function popup(station) {
  if (!station) return nothing;
  return html`<div class="popup">
    <strong>${t("metro.station")} ${station.name}</strong><br />${station.lineName}<br />${t(`metro.${station.status}`)}
  </div>`;
}

export const kpis = () => ({ total: 0, silent: [] });

export const points = () =>
  (state.metro?.features ?? [])
    .filter((f) => f.geometry.type === "Point")
    .map((f) => [f.geometry.coordinates[1], f.geometry.coordinates[0]]);
