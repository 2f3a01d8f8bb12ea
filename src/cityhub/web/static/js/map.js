// The map, its controls and what views share to draw on it (Leaflet, from npm through the import map). Each
// view (views/*.js) brings its own layer; this module only knows them by key.

import * as L from "leaflet";
import { html, render } from "lit-html";
import { t } from "./i18n.js";

const HANOI = [21.03, 105.83];
export const SILENT_COLOR = "#9aa0a6";

export function createMap(el, config) {
  const map = L.map(el, { center: HANOI, zoom: 12, zoomSnap: 0.25, zoomDelta: 0.5, attributionControl: true });
  map.attributionControl.setPrefix("Leaflet");
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.tileAttribution || "", maxZoom: 19, crossOrigin: true }).addTo(
      map,
    );
  } else {
    el.classList.add("no-tiles"); // no tile server: the hub's own wards and main roads, else a plain background
    if (config.basemap) drawBasemap(map, config.basemap);
  }
  // Station names under the markers once there is room for them (a wall display, or zoomed in).
  const labels = () =>
    el.classList.toggle("show-labels", map.getZoom() >= 12 && el.querySelectorAll(".aq-marker").length <= 100);
  map.on("zoomend", labels);
  labels();
  return map;
}

// Hà Nội's wards and main roads from the hub (GET /api/v1/basemap), under every data layer, not clickable: enough
// to tell where a station is without the internet. Drawn once; the data layers do not wait for it.
const ROAD_WEIGHT = { motorway: 2.4, trunk: 2, primary: 1.5, secondary: 1 };
async function drawBasemap(map, url) {
  try {
    const resp = await fetch(url);
    if (!resp.ok) return;
    const data = await resp.json();
    map.createPane("basemap").style.zIndex = 250; // above tiles (200), under overlays (400)
    const renderer = L.canvas({ pane: "basemap", padding: 0.3 });
    L.geoJSON(data, {
      pane: "basemap",
      renderer,
      interactive: false,
      style: (f) =>
        f.properties.layer === "ward"
          ? { color: "#3d4d68", weight: 0.7, fillColor: "#22304a", fillOpacity: 1 }
          : { color: "#56667f", weight: ROAD_WEIGHT[f.properties.class] ?? 1, opacity: 0.9 },
    }).addTo(map);
    map.attributionControl.addAttribution("© OpenStreetMap contributors");
    window.cityhub.basemap = data.features.length;
  } catch {
    // A plain background, as without the reference data.
  }
}

// A canvas of its own for a view's vectors (thousands of road segments draw fast there), above the tiles.
export function canvasPane(map, name, zIndex) {
  map.createPane(name).style.zIndex = zIndex;
  return L.canvas({ pane: name, padding: 0.3 });
}

export const toLatLngs = (coords) => coords.map(([lon, lat]) => [lat, lon]);

// A lit-html template as popup or tooltip content (Leaflet takes a node).
export function content(template) {
  const frag = document.createDocumentFragment();
  render(template, frag);
  return frag;
}

export function openPopup(map, latlng, template) {
  L.popup({ maxWidth: 320 }).setLatLng(latlng).setContent(content(template)).openOn(map);
}

// The first view: every point, clear of the zoom buttons (top left) and of the layer panel and legend, which
// cover the map's corners (their sizes, measured, as padding).
export function fitBounds(map, points) {
  if (!points.length) return;
  const el = map.getContainer();
  const size = (sel) => el.querySelector(sel)?.getBoundingClientRect() ?? { width: 0, height: 0 };
  const layers = size(".leaflet-top.leaflet-right .map-panel");
  const legend = size(".leaflet-bottom.leaflet-left .map-panel");
  map.fitBounds(L.latLngBounds(points), {
    maxZoom: 13,
    animate: false,
    paddingTopLeft: [50, layers.height + 16],
    paddingBottomRight: [20, Math.max(20, legend.height * 0.5)],
  });
}

// -- controls -----------------------------------------------------------------------------------------------------
function control(map, position, className, fill) {
  const Control = L.Control.extend({
    options: { position },
    onAdd() {
      const div = L.DomUtil.create("div", `leaflet-bar map-panel ${className}`);
      L.DomEvent.disableClickPropagation(div);
      fill(div);
      return div;
    },
  });
  return new Control().addTo(map);
}

// A panel of checkboxes, one per layer {key, group} (ids layer-aq, layer-traffic, layer-water, layer-metro).
export function layerControl(map, layers) {
  const toggle = (layer) => (e) => {
    if (e.target.checked) map.addLayer(layer.group);
    else map.removeLayer(layer.group);
  };
  return control(map, "topright", "layers-panel", (div) =>
    render(
      html`<h3 data-i18n="layers.title"></h3>
        ${layers.map(
          (l) =>
            html`<label
              ><input type="checkbox" id="layer-${l.key}" checked @change=${toggle(l)} />
              <span class="swatch ${l.key}"></span><span data-i18n="layer.${l.key}"></span
            ></label>`,
        )}`,
      div,
    ),
  );
}

export function legendControl(map) {
  return control(map, "bottomleft", "legend", (div) => (div.id = "legend"));
}

// One swatch of a legend.
export const swatch = (color, label, cls = "") =>
  html`<li><span class="sw ${cls}" style="background:${color}"></span>${label}</li>`;

// The legend: each view's part (views without one add nothing).
export function renderLegend(el, views) {
  render(
    views.map((v) => v.legend?.()),
    el,
  );
}

export const silentSwatch = () => swatch(SILENT_COLOR, t("legend.silent"));
