// What the traffic and water views share: their Things, found by the ObservedProperties of their Datastreams
// (definition URI, else name; never guessed from units), and the Datastreams' values for the time looked at.

import { getJSON, iso, postJSON } from "../api.js";
import { HOUR, state } from "../state.js";

// properties: [{role, definition, name}], what a view shows. The role of a Datastream's ObservedProperty in it.
export function roleOf(properties, op) {
  if (!op) return null;
  const p = properties.find((x) => x.definition === op.definition) ?? properties.find((x) => x.name === op.name);
  return p?.role ?? null;
}

// Every view's properties asked for in the same turn go out as one request (the traffic and water views load
// together: one GET /api/v1/geo/things for both, not one each); each view then keeps its own Things.
let batch = null; // {properties: [...], request: Promise of the GeoJSON}

function geoThings(properties) {
  if (!batch) {
    const b = { properties: [] };
    b.request = Promise.resolve().then(() => {
      batch = null; // the next round asks again
      const q = b.properties
        .flatMap((p) => [p.definition, p.name])
        .filter((v, i, all) => all.indexOf(v) === i)
        .map((v) => `observedProperty=${encodeURIComponent(v)}`)
        .join("&");
      return getJSON(`/api/v1/geo/things?${q}`);
    });
    batch = b;
  }
  batch.properties.push(...properties);
  return batch.request;
}

// Things with a Datastream of one of the properties (GET /api/v1/geo/things?observedProperty=…), each with its
// first Datastream of each role: [{thing, name, props, geometry, streams: {role: {"@iot.id", unit, …}}}].
export async function findThings(properties) {
  const geo = await geoThings(properties);
  const out = [];
  for (const f of geo.features) {
    if (!f.geometry?.type) continue;
    const streams = {};
    for (const d of f.properties.Datastreams ?? []) {
      const role = roleOf(properties, d.observedProperty);
      if (role && !(role in streams)) streams[role] = d;
    }
    if (!Object.keys(streams).length) continue; // another view's Thing
    out.push({
      thing: f.id,
      name: f.properties.name,
      props: f.properties.properties ?? {},
      geometry: f.geometry,
      streams,
    });
  }
  return out;
}

// The latest value of each Datastream, or its mean over the hour looked at: apply(datastream, value, time).
export async function loadValues(ids, apply) {
  if (!ids.length) return;
  if (!state.at) {
    const body = await postJSON("/api/v1/latest", { datastreams: ids });
    for (const v of body.value) apply(v.datastream, v.result, Date.parse(v.phenomenonTime));
    return;
  }
  const body = await postJSON("/api/v1/aggregate", {
    datastreams: ids,
    function: "avg",
    interval: "hour",
    start: iso(state.at),
    end: iso(new Date(state.at.getTime() + HOUR)),
  });
  for (const s of body.value) if (s.value.length) apply(s.datastream, s.value[0], Date.parse(s.time[0]));
}

// An Observation's time (the start of an interval).
export const obsTime = (o) => Date.parse(String(o.phenomenonTime).split("/")[0]);
