// The header's figures, from every view's kpis(): the worst station, sensors reporting and silent, open alerts.

import { html, nothing, render } from "lit-html";
import { fmtNum, textOn } from "./format.js";
import { t } from "./i18n.js";

// views: none before the first data. alerts: the number of open alerts, null when unknown; onWorst(thing): the worst station was clicked.
export function renderKpis(el, views, alerts, onWorst) {
  const parts = views.map((v) => v.kpis());
  const worst = parts.find((p) => p.worst)?.worst ?? null;
  const total = parts.reduce((n, p) => n + p.total, 0);
  const silent = parts.flatMap((p) => p.silent);
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
      <div class="kpi" id="kpi-reporting">
        <span class="kpi-label">${t("kpi.reporting")}</span>
        <span class="kpi-value" id="kpi-reporting-value">${parts.length ? `${fmtNum(total - silent.length)} / ${fmtNum(total)}` : "–"}</span
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
