// The page's shared state: what is looked at (index, language, hour) and what the views loaded. Also
// window.cityhub, which tests and bench/dashboard.py read (ready, state, changes, drawMs, renderMs).

import { getLang } from "./i18n.js";

export const HOUR = 3600e3;
export const INDICES = ["vn", "us", "us2012", "kr"];
export const INDEX_NAMES = { vn: "VN_AQI", us: "US AQI", us2012: "US AQI (2012)", kr: "KR CAI" };

function stored(key, allowed) {
  try {
    const v = localStorage.getItem(key);
    return allowed.includes(v) ? v : null;
  } catch {
    return null;
  }
}

export const state = {
  index: stored("cityhub.index", INDICES) ?? "vn",
  get lang() {
    return getLang(); // kept (and remembered) by i18n.js
  },
  at: null, // Date of the hour looked at, null: live
  selected: null, // the air-quality station in the detail panel
  updated: null, // when the data shown was last fetched or changed
  live: false, // the Observation stream is connected
  aq: new Map(), // thing → body of /api/v1/aqi/stations
  traffic: new Map(), // thing → {thing, name, props, geometry, speedDs, flowDs, freeFlow, speed, flow, time}
  water: new Map(), // thing → {thing, name, props, geometry, levelDs, unit, level, time}
  metro: null, // GeoJSON of /api/v1/transit/metro
};

export function setIndex(index) {
  state.index = index;
  try {
    localStorage.setItem("cityhub.index", index);
  } catch {
    // not remembered
  }
}

// The end of the period looked at: now, or the end of the past hour.
export const refTime = () => (state.at ? state.at.getTime() + HOUR : Date.now());

export const hub = (window.cityhub = { ready: false, changes: [], state });

// Something on the map changed live (bench/dashboard.py times these).
export function changed(layer, thing) {
  const now = performance.now();
  for (const fn of hub.changes) fn(layer, thing, now);
}
