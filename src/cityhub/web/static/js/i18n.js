// Vietnamese (default) and English strings of the dashboard; the choice is kept in localStorage.

const STRINGS = {
  vi: {
    "title": "CityHub Hà Nội",
    "subtitle": "Trung tâm điều hành đô thị",
    "kpi.worst": "Trạm ô nhiễm nhất",
    "kpi.reporting": "Trạm đang báo cáo",
    "kpi.silent": "Trạm mất tín hiệu",
    "kpi.alerts": "Cảnh báo đang mở",
    "kpi.none": "Không có",
    "kpi.silentList": "Mất tín hiệu: {names}",
    "index.label": "Chỉ số",
    "lang.label": "Ngôn ngữ",
    "layers.title": "Lớp bản đồ",
    "layer.aq": "Chất lượng không khí",
    "layer.traffic": "Giao thông",
    "layer.water": "Mực nước",
    "layer.metro": "Đường sắt đô thị",
    "legend.title": "Chú giải",
    "legend.traffic": "Tốc độ so với tốc độ tự do",
    "legend.noData": "Không có dữ liệu",
    "legend.silent": "Mất tín hiệu",
    "traffic.free": "≥ 75 %",
    "traffic.slow": "50–75 %",
    "traffic.heavy": "25–50 %",
    "traffic.jam": "< 25 %",
    "alerts.title": "Cảnh báo",
    "alerts.none": "Không có cảnh báo nào đang mở.",
    "alerts.unavailable": "Máy chủ này chưa có dịch vụ cảnh báo.",
    "alerts.loading": "Đang tải cảnh báo…",
    "alerts.state.open": "Đang mở",
    "alerts.state.acknowledged": "Đã xác nhận",
    "alerts.state.resolved": "Đã xử lý",
    "alerts.severity.critical": "Nghiêm trọng",
    "alerts.severity.warning": "Cảnh báo",
    "alerts.severity.info": "Thông tin",
    "detail.close": "Đóng",
    "detail.station": "Trạm quan trắc",
    "detail.hour": "Giờ {time}",
    "detail.noIndex": "Chưa đủ dữ liệu để tính chỉ số.",
    "detail.dominant": "Chất ô nhiễm chính",
    "detail.subIndices": "Chỉ số thành phần",
    "detail.pollutant": "Chất",
    "detail.concentration": "Nồng độ (µg/m³)",
    "detail.subIndex": "Chỉ số",
    "detail.chart": "48 giờ qua",
    "detail.chartEmpty": "Không có dữ liệu trong 48 giờ qua.",
    "detail.advice": "Khuyến cáo sức khỏe",
    "detail.advice.normal": "Người bình thường",
    "detail.advice.sensitive": "Nhóm nhạy cảm",
    "detail.school": "Hướng dẫn cho trường học",
    "detail.schoolPast": "Hướng dẫn cho trường học dựa trên chỉ số hiện tại; hãy quay về chế độ trực tiếp.",
    "detail.loading": "Đang tải…",
    "traffic.speed": "Tốc độ",
    "traffic.freeFlow": "Tốc độ tự do",
    "traffic.flow": "Lưu lượng",
    "traffic.ratio": "So với tốc độ tự do",
    "water.level": "Mực nước",
    "water.state": "Trạng thái",
    "water.below": "Dưới mức báo động",
    "water.alarm": "Báo động {level}",
    "water.noLevels": "Chưa có mức báo động",
    "water.levels": "Mức báo động",
    "metro.operating": "Đang khai thác",
    "metro.construction": "Đang xây dựng",
    "metro.planned": "Quy hoạch",
    "metro.station": "Ga",
    "common.time": "Thời điểm",
    "common.noData": "Không có dữ liệu",
    "time.live": "Trực tiếp",
    "time.past": "Xem lại",
    "time.slider": "Thời gian (7 ngày qua)",
    "time.asOf": "Số liệu lúc {time}",
    "time.liveAsOf": "Trực tiếp · cập nhật {time}",
    "conn.live": "Đang nhận dữ liệu trực tiếp",
    "conn.lost": "Mất kết nối luồng trực tiếp, đang kết nối lại…",
    "error.vendor": "Chưa có thư viện bản đồ: chạy `make web` (npm ci) rồi tải lại trang.",
    "error.load": "Không tải được dữ liệu: {detail}",
    "pollutant.pm25": "PM2.5",
    "pollutant.pm10": "PM10",
    "pollutant.o3": "O₃",
    "pollutant.no2": "NO₂",
    "pollutant.so2": "SO₂",
    "pollutant.co": "CO",
  },
  en: {
    "title": "CityHub Hanoi",
    "subtitle": "City operations centre",
    "kpi.worst": "Worst station",
    "kpi.reporting": "Stations reporting",
    "kpi.silent": "Silent stations",
    "kpi.alerts": "Active alerts",
    "kpi.none": "None",
    "kpi.silentList": "Silent: {names}",
    "index.label": "Index",
    "lang.label": "Language",
    "layers.title": "Layers",
    "layer.aq": "Air quality",
    "layer.traffic": "Traffic",
    "layer.water": "Water levels",
    "layer.metro": "Metro",
    "legend.title": "Legend",
    "legend.traffic": "Speed relative to free flow",
    "legend.noData": "No data",
    "legend.silent": "Silent",
    "traffic.free": "≥ 75 %",
    "traffic.slow": "50–75 %",
    "traffic.heavy": "25–50 %",
    "traffic.jam": "< 25 %",
    "alerts.title": "Alerts",
    "alerts.none": "No active alerts.",
    "alerts.unavailable": "Alerts are not available on this hub.",
    "alerts.loading": "Loading alerts…",
    "alerts.state.open": "Open",
    "alerts.state.acknowledged": "Acknowledged",
    "alerts.state.resolved": "Resolved",
    "alerts.severity.critical": "Critical",
    "alerts.severity.warning": "Warning",
    "alerts.severity.info": "Information",
    "detail.close": "Close",
    "detail.station": "Monitoring station",
    "detail.hour": "Hour of {time}",
    "detail.noIndex": "Not enough data for the index yet.",
    "detail.dominant": "Dominant pollutant",
    "detail.subIndices": "Sub-indices",
    "detail.pollutant": "Pollutant",
    "detail.concentration": "Concentration (µg/m³)",
    "detail.subIndex": "Index",
    "detail.chart": "Last 48 hours",
    "detail.chartEmpty": "No data in the last 48 hours.",
    "detail.advice": "Health advice",
    "detail.advice.normal": "General public",
    "detail.advice.sensitive": "Sensitive groups",
    "detail.school": "Guidance for schools",
    "detail.schoolPast": "School guidance follows the current index; go back to live.",
    "detail.loading": "Loading…",
    "traffic.speed": "Speed",
    "traffic.freeFlow": "Free-flow speed",
    "traffic.flow": "Flow",
    "traffic.ratio": "Relative to free flow",
    "water.level": "Water level",
    "water.state": "State",
    "water.below": "Below alarm levels",
    "water.alarm": "Alarm {level}",
    "water.noLevels": "No alarm levels declared",
    "water.levels": "Alarm levels",
    "metro.operating": "Operating",
    "metro.construction": "Under construction",
    "metro.planned": "Planned",
    "metro.station": "Station",
    "common.time": "Time",
    "common.noData": "No data",
    "time.live": "Live",
    "time.past": "Replay",
    "time.slider": "Time (last 7 days)",
    "time.asOf": "Data as of {time}",
    "time.liveAsOf": "Live · updated {time}",
    "conn.live": "Receiving live data",
    "conn.lost": "Live stream lost, reconnecting…",
    "error.vendor": "The map library is not built: run `make web` (npm ci) and reload.",
    "error.load": "Could not load data: {detail}",
    "pollutant.pm25": "PM2.5",
    "pollutant.pm10": "PM10",
    "pollutant.o3": "O₃",
    "pollutant.no2": "NO₂",
    "pollutant.so2": "SO₂",
    "pollutant.co": "CO",
  },
};

const KEY = "cityhub.lang";
let lang = "vi";
try {
  const saved = localStorage.getItem(KEY);
  if (saved in STRINGS) lang = saved;
} catch {
  // storage may be disabled: stay with Vietnamese
}

export const getLang = () => lang;
export const locale = () => (lang === "vi" ? "vi-VN" : "en-GB");

export function t(key, params = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.vi[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, k) => (k in params ? String(params[k]) : `{${k}}`));
}

export function setLang(next) {
  if (!(next in STRINGS)) return;
  lang = next;
  try {
    localStorage.setItem(KEY, next);
  } catch {
    // not remembered, still switched
  }
}

// Fill every element marked data-i18n (text), data-i18n-title and data-i18n-aria under root.
export function applyI18n(root = document) {
  document.documentElement.lang = lang;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-aria]")) el.setAttribute("aria-label", t(el.dataset.i18nAria));
}
