// The header's figures, from every view's kpis(): the worst station, air stations reporting (traffic detectors and
// water gauges beside them, each counted on its own), sensors silent, open alerts. In the past (time slider), the
// figures are those of the hour looked at, and say so.

import { html, nothing, render } from "lit-html";
import { fmtNum, fmtTime, textOn } from "./format.js";
import { t } from "./i18n.js";
import { state } from "./state.js";

const KINDS = { traffic: "kpi.kind.traffic", water: "kpi.kind.water" };

// views: none before the first data. alerts: the number of open alerts, null when unknown; onWorst(thing): the worst station was clicked.
export function renderKpis(el, views, alerts, onWorst) {
  const parts = views.map((v) => ({ key: v.key, ...v.kpis() }));
  const worst = parts.find((p) => p.worst)?.worst ?? null;
  const air = parts.find((p) => p.key === "aq");
  const others = parts.filter((p) => KINDS[p.key] && p.total);
  const silent = parts.flatMap((p) => p.silent);
  const ratio = (p) => `${fmtNum(p.total - p.silent.length)} / ${fmtNum(p.total)}`;
  const at = state.at ? t("kpi.at", { time: fmtTime(state.at) }) : "";
  const silentTitle = silent.length
    ? t("kpi.silentList", { names: silent.slice(0, 25).join(", ") + (silent.length > 25 ? "…" : "") })
    : "";
  const badge = worst ? `background:${worst.color};color:${textOn(worst.color)}` : "";
  render(
    html`<button class="kpi kpi-worst" id="kpi-worst" type="button" data-thing=${worst?.thing ?? nothing}
        @click=${() => worst && onWorst(worst.thing)}>
        <span class="kpi-label">${t("kpi.worst")}</span>
        <span class="kpi-value"
          ><span class="badge" id="kpi-worst-index" style=${badge} title=${worst?.category ?? nothing}
            >${worst ? fmtNum(worst.value) : "–"}</span
          ><span id="kpi-worst-name">${worst ? worst.name : t("common.noData")}</span></span
        >
      </button>
      <div class="kpi" id="kpi-reporting" title=${at || nothing}>
        <span class="kpi-label">${t("kpi.reporting")}</span>
        <span class="kpi-value" id="kpi-reporting-value">${air ? ratio(air) : "–"}</span>
        <span class="kpi-sub" id="kpi-reporting-others"
          >${others.map((p) => `${t(KINDS[p.key])} ${ratio(p)}`).join(" · ")}${at ? ` · ${at}` : ""}</span
        >
      </div>
      <div class="kpi ${silent.length ? "warn" : ""}" id="kpi-silent" title=${silentTitle}>
        <span class="kpi-label">${t("kpi.silent")}</span>
        <span class="kpi-value" id="kpi-silent-value">${parts.length ? fmtNum(silent.length) : "–"}</span>
      </div>
      <div class="kpi ${alerts > 0 ? "warn" : ""}" id="kpi-alerts">
        <span class="kpi-label">${t("kpi.alerts")}</span>
        <span class="kpi-value" id="kpi-alerts-value">${alerts === null ? "–" : fmtNum(alerts)}</span>
      </div>`,
    el,
  );
}
