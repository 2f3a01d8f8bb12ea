// The header's and footer's controls: index, language, time slider and the "live" button.

import { fmtTime } from "./format.js";
import { t } from "./i18n.js";
import { HOUR, state } from "./state.js";

const $ = (sel) => document.querySelector(sel);

// onTime(at: Date|null), onIndex(index), onLang(lang): what the page does when the operator changes them.
export function wireControls({ onTime, onIndex, onLang }) {
  const slider = $("#time-slider");
  let timer = null;
  slider.addEventListener("input", () => {
    const v = Number(slider.value);
    const at = v === 0 ? null : new Date(Math.floor(Date.now() / HOUR) * HOUR + v * HOUR);
    $("#time-label").textContent = at ? t("time.asOf", { time: fmtTime(at) }) : t("time.live");
    clearTimeout(timer);
    timer = setTimeout(() => onTime(at), 250); // the hour the slider stops at, not every hour it passes
  });
  $("#live-btn").addEventListener("click", () => {
    slider.value = "0";
    onTime(null);
  });
  const sel = $("#index-select");
  sel.value = state.index;
  sel.addEventListener("change", () => onIndex(sel.value));
  for (const b of document.querySelectorAll("[data-lang]")) b.addEventListener("click", () => onLang(b.dataset.lang));
}

export function renderControls() {
  for (const b of document.querySelectorAll("[data-lang]"))
    b.setAttribute("aria-pressed", String(b.dataset.lang === state.lang));
}

export function renderTime() {
  const live = state.at === null;
  document.body.classList.toggle("past", !live);
  $("#live-btn").classList.toggle("active", live);
  $("#live-btn").setAttribute("aria-pressed", String(live));
  $("#time-label").textContent = live
    ? t("time.liveAsOf", { time: fmtTime(state.updated ?? new Date(), { date: false, seconds: true }) })
    : t("time.asOf", { time: fmtTime(state.at) });
  if (live) $("#time-slider").value = "0";
}
