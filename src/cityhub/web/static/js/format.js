// Formatting: Hanoi local time (UTC+7, no daylight saving), numbers in the page's language, readable text colours.

import { locale, t } from "./i18n.js";

const ZONE = "Asia/Ho_Chi_Minh";

// Intl formatters are costly to make (a thousand markers, a header every live change): one per locale and options.
const formatters = new Map();
function formatter(Kind, opts) {
  const key = `${Kind.name}|${locale()}|${JSON.stringify(opts)}`;
  let f = formatters.get(key);
  if (!f) formatters.set(key, (f = new Kind(locale(), opts)));
  return f;
}

export function fmtTime(value, { date = true, seconds = false } = {}) {
  if (!value) return "–";
  const d = value instanceof Date ? value : new Date(value);
  const opts = { timeZone: ZONE, hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
  if (seconds) opts.second = "2-digit";
  if (date) Object.assign(opts, { weekday: "short", day: "2-digit", month: "2-digit" });
  return formatter(Intl.DateTimeFormat, opts).format(d);
}

// An hour as the interval it covers ("08:00–09:00 Th 3, 08/12"): an hourly value belongs to the whole hour, and
// stamped at its end the current hour would read as a time still ahead.
export function fmtHourSpan(value) {
  if (!value) return "–";
  const start = new Date(value);
  const end = new Date(start.getTime() + 3600e3);
  const hm = formatter(Intl.DateTimeFormat, { timeZone: ZONE, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  const day = formatter(Intl.DateTimeFormat, { timeZone: ZONE, weekday: "short", day: "2-digit", month: "2-digit" });
  return `${hm.format(start)}–${hm.format(end)} ${day.format(start)}`;
}

export const fmtHour = (value) =>
  formatter(Intl.DateTimeFormat, { timeZone: ZONE, hour: "2-digit", hourCycle: "h23" }).format(new Date(value));

export function fmtNum(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return formatter(Intl.NumberFormat, { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value);
}

// Black or white text, whichever reads better on the background colour (#rrggbb).
export function textOn(hex) {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex || "");
  if (!m) return "#fff";
  const [r, g, b] = m.slice(1).map((x) => parseInt(x, 16) / 255);
  const lin = (c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
  const lum = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  return lum > 0.35 ? "#111" : "#fff";
}

export const pollutantName = (key) => t(`pollutant.${key}`);

// The category's name in the page's language (the API gives both).
export const categoryName = (cat, lang) => (cat ? (lang === "vi" ? cat.name_vi : cat.name_en) : "");
