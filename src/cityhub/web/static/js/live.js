// Live updates: the Observation stream (/api/v1/observations/stream), each Observation handed to every view
// (each takes its own), and the alerts stream (/api/v1/alerts/stream) into the alerts panel.

import { getJSON, stream } from "./api.js";
import { changed, state } from "./state.js";

// ready(): on connecting and on every reconnect, so the caller can fetch again what it may have missed.
// change(): after any view showed a change. status(ok): connected or not.
export function observe(views, { ready, change, status }) {
  const routes = views.map((view) => [
    view,
    (thing) => {
      changed(view.key, thing);
      change(view.key, thing);
    },
  ]);
  const observation = (o) => {
    if (state.at) return; // looking at the past: the live state is loaded again on return
    for (const [view, notify] of routes) view.live(o, notify);
  };
  const connect = () => {
    const es = stream(
      "/api/v1/observations/stream",
      {
        ready,
        observation,
        // Dropped for reading too slowly: a fresh connection (and a catch-up) instead of a gap.
        dropped: () => {
          es.close();
          setTimeout(connect, 1000);
        },
      },
      (ok) => {
        state.live = ok;
        status(ok);
      },
    );
  };
  connect();
}

// The stream first, then (once it is open, and after each reconnect) the list of active alerts. Resolves once
// the list is in; a hub without the alerts module says so through the panel.
export function watchAlerts(api, panel) {
  if (!api.extensions?.alerts) {
    panel.setUnavailable();
    return Promise.resolve();
  }
  const list = () => getJSON("/api/v1/alerts?state=active&limit=500").then((body) => panel.setAll(body.value));
  if (!api.extensions["alerts/stream"]) return list();
  return new Promise((resolve) => {
    stream("/api/v1/alerts/stream", { alert: (payload) => panel.apply(payload) }, (ok) => {
      if (ok)
        list()
          .catch((e) => console.warn("alerts", e))
          .finally(resolve);
    });
  });
}
