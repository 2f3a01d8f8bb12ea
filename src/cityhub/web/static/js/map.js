// The map and its four layers (Leaflet, from npm through `make web`). Air-quality and water markers are DOM
// elements (labelled, clickable, few); traffic and metro are vectors on canvas (thousands of road segments).

import { escapeHtml, fmtNum, textOn } from "./format.js";
import { t } from "./i18n.js";

const L = window.L;
const HANOI = [21.03, 105.83];
export const SILENT_COLOR = "#9aa0a6";
export const SPEED_COLORS = { free: "#1a9850", slow: "#f2b600", heavy: "#e8590c", jam: "#a50026", none: SILENT_COLOR };
export const WATER_COLORS = { below: "#1565c0", I: "#f9a825", II: "#ef6c00", III: "#c62828", none: SILENT_COLOR };

export function createMap(el, config) {
  const map = L.map(el, { center: HANOI, zoom: 12, zoomSnap: 0.25, zoomDelta: 0.5, attributionControl: true });
  map.attributionControl.setPrefix("Leaflet");
  if (config.tileUrl) {
    L.tileLayer(config.tileUrl, { attribution: config.tileAttribution || "", maxZoom: 19, crossOrigin: true }).addTo(
      map,
    );
  } else {
    el.classList.add("no-tiles"); // a plain background: no requests, nothing broken
  }
  map.createPane("metro").style.zIndex = 410;
  map.createPane("traffic").style.zIndex = 420;
  const renderers = {
    metro: L.canvas({ pane: "metro", padding: 0.3 }),
    traffic: L.canvas({ pane: "traffic", padding: 0.3 }),
  };
  // Station names under the markers once there is room for them (a wall display, or zoomed in).
  const labels = () => el.classList.toggle("show-labels", map.getZoom() >= 12 && el.querySelectorAll(".aq-marker").length <= 100);
  map.on("zoomend", labels);
  labels();
  return { map, renderers };
}

// -- air quality -----------------------------------------------------------------------------------------------
export class AirLayer {
  constructor(map, onSelect) {
    this.map = map;
    this.group = L.layerGroup();
    this.markers = new Map(); // thing → L.Marker
    this.onSelect = onSelect;
  }

  // view: {thing, name, short, lat, lon, value, color, category, categoryName, silent, selected}
  html(v) {
    const bg = v.silent || v.value === null ? SILENT_COLOR : v.color;
    const cls = ["aq-marker", v.silent ? "silent" : "", v.selected ? "selected" : "", v.alert ? "alerting" : ""];
    return (
      `<div class="${cls.join(" ")}" data-thing="${v.thing}" data-category="${escapeHtml(v.category ?? "none")}" ` +
      `data-color="${escapeHtml(bg)}" style="background:${bg};color:${textOn(bg)}">` +
      `${v.value === null ? "–" : fmtNum(v.value)}</div><div class="aq-name">${escapeHtml(v.short)}</div>`
    );
  }

  set(views) {
    const seen = new Set();
    for (const v of views) {
      seen.add(v.thing);
      const m = this.markers.get(v.thing);
      if (m) this.update(v);
      else this.add(v);
    }
    for (const [thing, m] of this.markers) {
      if (!seen.has(thing)) {
        this.group.removeLayer(m);
        this.markers.delete(thing);
      }
    }
  }

  add(v) {
    const icon = L.divIcon({ className: "aq-icon", html: this.html(v), iconSize: null });
    const m = L.marker([v.lat, v.lon], { icon, title: v.name, alt: v.name, riseOnHover: true, zIndexOffset: 1000 });
    m.on("click", () => this.onSelect(v.thing));
    m.bindTooltip("", { direction: "top", offset: [0, -14] });
    m.on("tooltipopen", () => m.setTooltipContent(this.tooltip(m.view)));
    m.view = v;
    this.markers.set(v.thing, m);
    this.group.addLayer(m);
  }

  tooltip(v) {
    const idx = v.value === null ? t("common.noData") : `${fmtNum(v.value)} · ${escapeHtml(v.categoryName)}`;
    return `<strong>${escapeHtml(v.name)}</strong><br>${v.indexName}: ${idx}${v.silent ? `<br>${t("legend.silent")}` : ""}`;
  }

  // Change the marker in place (the element stays, so an observer sees an attribute change, not a new node).
  update(v) {
    const m = this.markers.get(v.thing);
    if (!m) return this.add(v);
    m.view = v;
    const html = this.html(v);
    m.options.icon.options.html = html;
    const el = m.getElement();
    if (el) {
      const tmp = document.createElement("div");
      tmp.innerHTML = html;
      const [badge, name] = tmp.children;
      const cur = el.querySelector(".aq-marker");
      for (const a of ["class", "data-category", "data-color", "style"]) {
        if (cur.getAttribute(a) !== badge.getAttribute(a)) cur.setAttribute(a, badge.getAttribute(a));
      }
      if (cur.textContent !== badge.textContent) cur.textContent = badge.textContent;
      el.querySelector(".aq-name").textContent = name.textContent;
    }
    if (m.isTooltipOpen()) m.setTooltipContent(this.tooltip(v));
  }
}

// -- traffic ------------------------------------------------------------------------------------------------------
const toLatLngs = (coords) => coords.map(([lon, lat]) => [lat, lon]);

export class TrafficLayer {
  constructor(map, renderer, onSelect) {
    this.group = L.layerGroup();
    this.renderer = renderer;
    this.shapes = new Map(); // thing → path
    this.onSelect = onSelect;
  }

  // item: {thing, name, geometry, cls}
  set(items) {
    this.group.clearLayers();
    this.shapes.clear();
    for (const it of items) {
      const g = it.geometry;
      let shape;
      const color = SPEED_COLORS[it.cls];
      if (g.type === "Point") {
        const [lon, lat] = g.coordinates;
        shape = L.circleMarker([lat, lon], {
          renderer: this.renderer,
          radius: 6,
          weight: 2,
          color: "#fff",
          fillColor: color,
          fillOpacity: 1,
        });
      } else if (g.type === "LineString" || g.type === "MultiLineString") {
        const latlngs = g.type === "LineString" ? toLatLngs(g.coordinates) : g.coordinates.map(toLatLngs);
        shape = L.polyline(latlngs, { renderer: this.renderer, color, weight: 5, opacity: 0.9, lineCap: "round" });
      } else {
        continue;
      }
      shape.thing = it.thing;
      shape.cls = it.cls;
      shape.on("click", (e) => this.onSelect(it.thing, e.latlng));
      this.shapes.set(it.thing, shape);
      this.group.addLayer(shape);
    }
  }

  update(thing, cls) {
    const s = this.shapes.get(thing);
    if (!s || s.cls === cls) return false;
    s.cls = cls;
    if (s instanceof L.CircleMarker) s.setStyle({ fillColor: SPEED_COLORS[cls] });
    else s.setStyle({ color: SPEED_COLORS[cls] });
    return true;
  }
}

// -- water --------------------------------------------------------------------------------------------------------
export class WaterLayer {
  constructor(map, onSelect) {
    this.group = L.layerGroup();
    this.markers = new Map();
    this.onSelect = onSelect;
  }

  html(v) {
    const bg = WATER_COLORS[v.state] ?? WATER_COLORS.below;
    return (
      `<div class="water-marker" data-thing="${v.thing}" data-state="${v.state}" ` +
      `style="background:${bg};color:${textOn(bg)}"><span class="wave">≈</span>${escapeHtml(v.label)}</div>`
    );
  }

  set(views) {
    this.group.clearLayers();
    this.markers.clear();
    for (const v of views) {
      const icon = L.divIcon({ className: "water-icon", html: this.html(v), iconSize: null });
      const m = L.marker([v.lat, v.lon], { icon, title: v.name, alt: v.name, zIndexOffset: 500 });
      m.on("click", () => this.onSelect(v.thing, m.getLatLng()));
      this.markers.set(v.thing, m);
      this.group.addLayer(m);
    }
  }

  update(v) {
    const m = this.markers.get(v.thing);
    if (!m) return;
    const html = this.html(v);
    m.options.icon.options.html = html;
    const el = m.getElement();
    if (el) el.innerHTML = html;
  }
}

// -- metro --------------------------------------------------------------------------------------------------------
export class MetroLayer {
  constructor(map, renderer, onSelect) {
    this.group = L.layerGroup();
    this.renderer = renderer;
    this.onSelect = onSelect;
  }

  set(geojson) {
    this.group.clearLayers();
    const dash = { operating: null, construction: "8 6", planned: "2 6" };
    for (const f of geojson.features) {
      const p = f.properties;
      if (f.geometry.type === "LineString") {
        this.group.addLayer(
          L.polyline(toLatLngs(f.geometry.coordinates), {
            renderer: this.renderer,
            color: p.color,
            weight: 4,
            opacity: p.status === "operating" ? 0.95 : 0.7,
            dashArray: dash[p.status],
            interactive: false,
          }),
        );
      } else if (f.geometry.type === "Point") {
        const [lon, lat] = f.geometry.coordinates;
        const m = L.circleMarker([lat, lon], {
          renderer: this.renderer,
          radius: 4.5,
          weight: 2.5,
          color: p.color,
          fillColor: p.status === "operating" ? "#fff" : "#e9ecef",
          fillOpacity: 1,
        });
        m.on("click", (e) => this.onSelect(p, e.latlng));
        m.bindTooltip(() => `${t("metro.station")} ${escapeHtml(p.name)}`, { direction: "top" });
        this.group.addLayer(m);
      }
    }
  }
}

// -- controls -----------------------------------------------------------------------------------------------------
// A panel of checkboxes, one per layer (ids layer-aq, layer-traffic, layer-water, layer-metro).
export function layerControl(map, layers) {
  const Control = L.Control.extend({
    options: { position: "topright" },
    onAdd() {
      const div = L.DomUtil.create("div", "leaflet-bar map-panel layers-panel");
      L.DomEvent.disableClickPropagation(div);
      div.innerHTML =
        `<h3 data-i18n="layers.title"></h3>` +
        Object.keys(layers)
          .map(
            (key) =>
              `<label><input type="checkbox" id="layer-${key}" checked> <span class="swatch ${key}"></span>` +
              `<span data-i18n="layer.${key}"></span></label>`,
          )
          .join("");
      for (const [key, layer] of Object.entries(layers)) {
        div.querySelector(`#layer-${key}`).addEventListener("change", (e) => {
          if (e.target.checked) map.addLayer(layer.group);
          else map.removeLayer(layer.group);
        });
      }
      return div;
    },
  });
  return new Control().addTo(map);
}

export function legendControl(map) {
  const Control = L.Control.extend({
    options: { position: "bottomleft" },
    onAdd() {
      const div = L.DomUtil.create("div", "leaflet-bar map-panel legend");
      L.DomEvent.disableClickPropagation(div);
      div.id = "legend";
      return div;
    },
  });
  return new Control().addTo(map);
}

// categories: [{key, name, color}] in index order.
export function renderLegend(el, indexName, categories) {
  const sw = (color, label, cls = "") =>
    `<li><span class="sw ${cls}" style="background:${color}"></span>${escapeHtml(label)}</li>`;
  el.innerHTML =
    `<h3>${escapeHtml(indexName)}</h3><ul>` +
    categories.map((c) => sw(c.color, c.name)).join("") +
    sw(SILENT_COLOR, t("legend.silent")) +
    `</ul><h3>${escapeHtml(t("legend.traffic"))}</h3><ul>` +
    ["free", "slow", "heavy", "jam"].map((k) => sw(SPEED_COLORS[k], t(`traffic.${k}`), "line")).join("") +
    `</ul><h3>${escapeHtml(t("layer.water"))}</h3><ul>` +
    sw(WATER_COLORS.below, t("water.below")) +
    ["I", "II", "III"].map((k) => sw(WATER_COLORS[k], t("water.alarm", { level: k }))).join("") +
    `</ul>`;
}
