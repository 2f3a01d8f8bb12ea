// The alerts panel: active alerts from GET /api/v1/alerts?state=active, kept current by the SSE stream
// /api/v1/alerts/stream (`event: alert`, JSON {id, event, alert: {...}}). Hubs without the alerts module say so.

import { html, render } from "lit-html";
import { fmtHourSpan, fmtTime } from "./format.js";
import { getLang, t } from "./i18n.js";

const RANK = { critical: 0, warning: 1, info: 2 };
const ACTIVE = new Set(["open", "acknowledged"]);

export class AlertsPanel {
  constructor(el, onChange, onPick = null) {
    this.el = el;
    this.onChange = onChange;
    this.onPick = onPick; // an alert clicked: show its subject
    this.alerts = new Map(); // id → alert
    this.available = null; // null: not known yet
    this.fresh = new Set();
  }

  setUnavailable() {
    this.available = false;
    this.alerts.clear();
    this.render();
    this.onChange();
  }

  setAll(list) {
    this.available = true;
    this.alerts = new Map(list.filter((a) => ACTIVE.has(a.state)).map((a) => [a.id, a]));
    this.render();
    this.onChange();
  }

  // One alert event from the stream: an alert opened, escalated, acknowledged or resolved.
  apply(payload) {
    const a = payload.alert ?? payload;
    if (!a || a.id === undefined) return;
    if (ACTIVE.has(a.state)) {
      this.alerts.set(a.id, a);
      this.fresh.add(a.id);
      setTimeout(() => {
        this.fresh.delete(a.id);
        this.render();
      }, 4000);
    } else {
      this.alerts.delete(a.id);
    }
    this.render();
    this.onChange();
  }

  get count() {
    return this.available ? this.alerts.size : null;
  }

  // Things with an active alert (subjects that are Things, or Datastreams resolved by the caller).
  subjects() {
    return [...this.alerts.values()].map((a) => a.subject).filter(Boolean);
  }

  // [subject, severity] of every active alert.
  severities() {
    return [...this.alerts.values()].filter((a) => a.subject).map((a) => [a.subject, a.severity ?? "info"]);
  }

  render() {
    this.el.dataset.available = String(this.available);
    render(this.template(), this.el);
  }

  template() {
    if (this.available === null) return html`<p class="muted">${t("alerts.loading")}</p>`;
    if (!this.available) return html`<p class="muted unavailable">${t("alerts.unavailable")}</p>`;
    const list = [...this.alerts.values()].sort(
      (a, b) =>
        (RANK[a.severity] ?? 3) - (RANK[b.severity] ?? 3) ||
        String(b.openedAt ?? "").localeCompare(String(a.openedAt ?? "")),
    );
    if (!list.length) return html`<p class="muted none">${t("alerts.none")}</p>`;
    return html`<ul class="alert-list">
      ${list.map((a) => this.item(a))}
    </ul>`;
  }

  item(a) {
    const sev = a.severity ?? "info";
    const subject = typeof a.subject === "object" ? (a.subject?.name ?? "") : String(a.subject ?? "");
    const rule = typeof a.rule === "object" ? (a.rule?.name ?? "") : String(a.rule ?? "");
    // The rule's title for people in the page's language ("Không khí kém kéo dài 2 giờ ở ..."), else its message;
    // the message (the rule's terms: "VN_AQI 113 >= 101 ...") stays below it for the operator who wants them.
    const titles = a.details?.title ?? {};
    const title = titles[getLang()] ?? titles.en ?? titles.vi ?? null;
    const meta = [subject + (a.levelName ? ` · ${a.levelName}` : ""), rule && a.message ? rule : ""].filter(Boolean);
    if (title && a.message) meta.unshift(a.message);
    const pick = () => this.onPick?.(a);
    const key = (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        pick();
      }
    };
    return html`<li
      class="alert sev-${sev} state-${a.state} ${this.fresh.has(a.id) ? "flash" : ""} ${this.onPick ? "pickable" : ""}"
      data-alert-id=${a.id}
      tabindex="0"
      role="button"
      @click=${pick}
      @keydown=${key}
    >
      <div class="alert-top">
        <span class="sev">${t(`alerts.severity.${sev}`)}</span><span class="state">${t(`alerts.state.${a.state}`)}</span
        ><time>${a.details?.period === "hour" && a.triggerTime ? fmtHourSpan(a.triggerTime) : fmtTime(a.triggerTime ?? a.openedAt)}</time>
      </div>
      <div class="msg">${title || a.message || rule}</div>
      <div class="meta">${meta.join(" · ")}</div>
    </li>`;
  }
}
