// The public CityHub API, as any other client reads it.

export class ApiError extends Error {
  constructor(status, body, url) {
    super(`${status} ${body?.detail ?? body?.title ?? ""} (${url})`);
    this.status = status;
    this.body = body;
  }
}

// A response index.html asked for before the modules loaded (window.cityhubEarly: URL → fetch), used once.
function early(url, options) {
  const map = window.cityhubEarly;
  if (!map?.has(url) || options.method) return null;
  const r = map.get(url);
  map.delete(url);
  return r.catch(() => null);
}

export async function getJSON(url, options = {}) {
  const r =
    (await early(url, options)) ?? (await fetch(url, { headers: { Accept: "application/json" }, ...options }));
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, body, url);
  return body;
}

export function postJSON(url, data) {
  return getJSON(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(data),
  });
}

export const iso = (date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");

// A server-sent event source with named events; EventSource reconnects by itself, onState reports it.
export function stream(url, handlers, onState = () => {}) {
  const es = new EventSource(url);
  for (const [name, fn] of Object.entries(handlers)) {
    es.addEventListener(name, (ev) => {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      fn(data, ev);
    });
  }
  es.onopen = () => onState(true);
  es.onerror = () => onState(false);
  return es;
}
