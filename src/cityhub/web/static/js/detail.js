// The station detail panel: every sub-index, the last 48 hours, health advice and school guidance, all from
// /api/v1/aqi/stations/{thing} and its history and school endpoints.

import { getJSON, iso } from "./api.js";
import { indexChart } from "./chart.js";
import { html, nothing, render } from "lit-html";
import { categoryName, fmtHourSpan, fmtNum, pollutantName, textOn } from "./format.js";
import { getLang, t } from "./i18n.js";

const ORDER = ["pm25", "pm10", "o3", "no2", "so2", "co"];
// Decimals of a concentration by its unit (the API says which: the US index has O3 and CO in ppm, NO2 in ppb).
const DIGITS = { "µg/m³": 1, ppm: 3, ppb: 0 };

export class DetailPanel {
  constructor(el, { onClose }) {
    this.el = el;
    this.onClose = onClose;
    this.thing = null;
    this.data = null;
    this.token = 0;
  }

  // ctx: {index: "vn"|"us"|"us2012"|"kr", at: Date|null (null: live)}
  async show(thing, ctx) {
    const token = ++this.token;
    if (this.thing !== thing) {
      this.thing = thing;
      this.data = null;
      this.el.hidden = false;
      this.el.dataset.thing = thing;
      render(html`<p class="muted">${t("detail.loading")}</p>`, this.el);
    }
    const at = ctx.at;
    const q = `index=${ctx.index}${at ? `&at=${encodeURIComponent(iso(at))}` : ""}`;
    const end = at ? new Date(Math.floor(at.getTime() / 3600e3) * 3600e3 + 3600e3) : nextHour(new Date());
    const start = new Date(end.getTime() - 48 * 3600e3);
    const base = `/api/v1/aqi/stations/${thing}`;
    const [station, history] = await Promise.all([
      getJSON(`${base}?${q}`),
      getJSON(
        `${base}/history?index=${ctx.index}&start=${encodeURIComponent(iso(start))}&end=${encodeURIComponent(iso(end))}`,
      ),
    ]);
    let school = null;
    if (!at) {
      // Guidance follows the current VN_AQI; asked only when there is one (no 404 to log).
      const vn = ctx.index === "vn" ? station : await getJSON(`${base}?index=vn`);
      if (vn.aqi?.value !== null && vn.aqi?.value !== undefined) school = await getJSON(`${base}/school`);
    }
    if (token !== this.token || this.thing !== thing) return; // a newer request won
    this.data = { station, history, school, start, live: !at };
    this.render();
  }

  render() {
    if (this.data) render(this.template(), this.el);
  }

  template() {
    const lang = getLang();
    const { station, history, school, start, live } = this.data;
    const a = station.aqi;
    const value = a?.value ?? null;
    const color = value === null ? "#9aa0a6" : a.category.color;
    const subs = a
      ? ORDER.filter((p) => p in a.sub_indices).concat(Object.keys(a.sub_indices).filter((p) => !ORDER.includes(p)))
      : [];
    const advice = Object.entries(a?.advice ?? {});
    let schoolPart;
    if (!live) schoolPart = html`<p class="muted">${t("detail.schoolPast")}</p>`;
    else if (school)
      schoolPart = html`<div class="school level-${school.level ?? "none"}">
        <strong>${school[lang]}</strong>
        <p>${school.reason?.[lang] ?? ""}</p>
      </div>`;
    else schoolPart = html`<p class="muted">${t("detail.noIndex")}</p>`;
    const points = history.value.map((h) => ({
      time: h.time,
      value: h.value,
      color: h.category?.color,
      label: categoryName(h.category, lang),
    }));
    const chart = points.length
      ? indexChart(points, start, 48, `${t("detail.chart")}: ${station.name}`)
      : html`<p class="muted">${t("detail.chartEmpty")}</p>`;
    return html`
      <header class="detail-head">
        <div>
          <div class="kicker">${t("detail.station")}</div>
          <h2 id="detail-name">${station.name}</h2>
          <div class="muted">${station.hour ? t("detail.hour", { time: fmtHourSpan(station.hour) }) : t("common.noData")}</div>
        </div>
        <button class="close" type="button" aria-label=${t("detail.close")} title=${t("detail.close")} @click=${() => this.close()}>×</button>
      </header>
      <div class="detail-index" style="background:${color};color:${textOn(color)}">
        <span class="big" id="detail-value">${value === null ? "–" : fmtNum(value)}</span>
        <span class="cat">${value === null ? t("detail.noIndex") : categoryName(a.category, lang)}</span>
        <span class="idx">${a?.index_name ?? ""}</span>
      </div>
      ${
        a?.dominant
          ? html`<p class="dominant-line">${t("detail.dominant")}: <strong>${pollutantName(a.dominant)}</strong></p>`
          : nothing
      }
      <h3>${t("detail.subIndices")}</h3>
      <table class="subindices">
        <thead>
          <tr>
            <th>${t("detail.pollutant")}</th>
            <th class="num">${t("detail.concentration")}</th>
            <th class="num">${t("detail.subIndex")}</th>
          </tr>
        </thead>
        <tbody>
          ${subs.map(
            (p) =>
              html`<tr class=${p === a.dominant ? "dominant" : ""} data-pollutant=${p}>
                <td>${pollutantName(p)}</td>
                <td class="num" data-unit=${a.units?.[p] ?? "µg/m³"}>
                  ${a.concentrations?.[p] === null || a.concentrations?.[p] === undefined
                    ? "–"
                    : html`${fmtNum(a.concentrations[p], DIGITS[a.units?.[p]] ?? 1)}
                        <span class="unit">${a.units?.[p] ?? "µg/m³"}</span>`}
                </td>
                <td class="num">${fmtNum(a.sub_indices[p])}</td>
              </tr>`,
          )}
        </tbody>
      </table>
      <h3>${t("detail.chart")}</h3>
      <div class="chart-box" id="detail-chart">${chart}</div>
      <h3>${t("detail.advice")}</h3>
      <dl class="advice" id="detail-advice">
        ${
          advice.length
            ? advice.map(
                ([group, text]) => html`<dt>${t(`detail.advice.${group}`)}</dt><dd>${text[lang] ?? text.vi ?? ""}</dd>`,
              )
            : html`<dd class="muted">${t("detail.noIndex")}</dd>`
        }
      </dl>
      <h3>${t("detail.school")}</h3>
      <div id="detail-school">${schoolPart}</div>`;
  }

  close() {
    this.token++;
    this.thing = null;
    this.data = null;
    this.el.hidden = true;
    render(nothing, this.el);
    delete this.el.dataset.thing;
    this.onClose();
  }
}

function nextHour(d) {
  return new Date(Math.floor(d.getTime() / 3600e3) * 3600e3 + 3600e3);
}
