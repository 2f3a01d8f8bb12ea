"""Breakpoint tables, categories, colours, health advice and unit conversion for the three indices in
``shared/reference/air_quality_indices.md``: VN_AQI (1459/QĐ-TCMT), US EPA AQI (2024 and 2012 tables), Korea CAI.

A table is a list of segments ``(C_lo, C_hi, I_lo, I_hi)``. For the US and Korean tables concentrations are
stored as integers in the unit the standard truncates to (PM2.5 tenths of µg/m³, O3 ppb = 0.001 ppm, CO tenths
of ppm, ...), so the interpolation of a truncated concentration is exact integer arithmetic up to one division:
a true half (e.g. 125.5) stays exactly .5 and rounds up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np

_V = TypeVar("_V", float, "np.ndarray")  # a value or a NumPy array of them

POLLUTANTS: tuple[str, ...] = ("pm25", "pm10", "o3", "no2", "so2", "co")
# The usual spellings of each pollutant, lower-cased with everything but letters, digits and "_" removed ("PM2.5",
# "PM 2.5", "pm2_5", "Ozone", "Nitrogen dioxide"): ObservedProperty names, definition URIs and file headers.
_ALIASES = {
    "pm25": "pm25", "pm2_5": "pm25", "finedust": "pm25", "fineparticulatematter": "pm25",
    "pm10": "pm10", "particulatematter10": "pm10",
    "o3": "o3", "ozone": "o3",
    "no2": "no2", "nitrogendioxide": "no2",
    "so2": "so2", "sulphurdioxide": "so2", "sulfurdioxide": "so2",
    "co": "co", "carbonmonoxide": "co",
}  # fmt: skip


def pollutant_of(name: str | None, definition: str | None) -> str | None:
    """The pollutant an ObservedProperty measures, from its name or its definition URI's last segment."""
    for text in (name, (definition or "").rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]):
        key = re.sub(r"[^a-z0-9_]", "", (text or "").lower().replace(".", ""))
        if key in _ALIASES:
            return _ALIASES[key]
    return None


STANDARDS: tuple[str, ...] = ("vn", "us", "us2012", "kr", "us2012-stateair")
# Historical reproduction of what the US Embassy's StateAir files of 2016-2017 published: the 2012 table with the
# PM NowCast rounded half up to the table's precision (fitted on those files, computed by AirNow from raw values
# more precise than they publish), where the EPA's Technical Assistance Document, and AirNow from mid-2018,
# truncate it. Never a default.
ROUNDED_NOWCAST: frozenset[str] = frozenset({"us2012-stateair"})
INDEX_NAMES: dict[str, str] = {
    "vn": "VN_AQI (1459/QĐ-TCMT)",
    "us": "US EPA AQI (2024)",
    "us2012": "US EPA AQI (2012)",
    "kr": "Korea CAI",
    "us2012-stateair": "US EPA AQI (2012), NowCast rounded as the StateAir files of 2016-2017",
}

# g/mol, for µg/m³ = ppb × M / 24.45 (25 °C, 1 atm)
MOLAR_MASS: dict[str, float] = {"o3": 48.00, "no2": 46.01, "so2": 64.07, "co": 28.01}
MOLAR_VOLUME = 24.45


@dataclass(frozen=True)
class Category:
    key: str
    name_vi: str
    name_en: str
    color: str
    rgb: tuple[int, int, int]

    def to_dict(self) -> dict:
        return {"key": self.key, "name_vi": self.name_vi, "name_en": self.name_en, "color": self.color,
                "rgb": list(self.rgb)}  # fmt: skip


def _cat(key: str, vi: str, en: str, rgb: tuple[int, int, int]) -> Category:
    return Category(key, vi, en, "#{:02x}{:02x}{:02x}".format(*rgb), rgb)


@dataclass(frozen=True)
class Segments:
    """Piecewise-linear table of one averaging column. ``scale``: concentration × scale is truncated to an
    integer before lookup (None: no truncation, VN_AQI). ``extrapolate``: above the top segment the last
    segment's slope continues ("beyond the AQI"); otherwise the column does not define the index there."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]
    ilo: tuple[int, ...]
    ihi: tuple[int, ...]
    scale: float | None
    extrapolate: bool = True


def _vn(bps: tuple[float, ...], extrapolate: bool = True) -> Segments:
    levels = (0, 50, 100, 150, 200, 300, 400, 500)[: len(bps)]
    return Segments(bps[:-1], bps[1:], levels[:-1], levels[1:], None, extrapolate)


def _gap(rows: tuple[tuple[float, float, int, int], ...], scale: float, extrapolate: bool = True) -> Segments:
    lo, hi, ilo, ihi = zip(*rows, strict=True)
    return Segments(lo, hi, ilo, ihi, scale, extrapolate)


# VN_AQI, µg/m³ (Decision 1459/QĐ-TCMT, table 1). O3 8-h is not defined above 400 µg/m³.
VN = {
    "o3_1h": _vn((0, 160, 200, 300, 400, 800, 1000, 1200)),
    "o3_8h": _vn((0, 100, 120, 170, 210, 400), extrapolate=False),
    "co": _vn((0, 10000, 30000, 45000, 60000, 90000, 120000, 150000)),
    "so2": _vn((0, 125, 350, 550, 800, 1600, 2100, 2630)),
    "no2": _vn((0, 100, 200, 700, 1200, 2350, 3100, 3850)),
    "pm10": _vn((0, 50, 150, 250, 350, 420, 500, 600)),
    "pm25": _vn((0, 25, 50, 80, 150, 250, 350, 500)),
}

# US EPA: O3 ppb (0.001 ppm), PM2.5 0.1 µg/m³, PM10 µg/m³, CO 0.1 ppm, SO2/NO2 ppb.
_US_COMMON = {
    "o3_8h": _gap(((0, 54, 0, 50), (55, 70, 51, 100), (71, 85, 101, 150), (86, 105, 151, 200), (106, 200, 201, 300)),
                  1000, extrapolate=False),
    "so2_1h": _gap(((0, 35, 0, 50), (36, 75, 51, 100), (76, 185, 101, 150), (186, 304, 151, 200)), 1,
                   extrapolate=False),
}  # fmt: skip
US2024 = {
    **_US_COMMON,
    "o3_1h": _gap(((125, 164, 101, 150), (165, 204, 151, 200), (205, 404, 201, 300), (405, 604, 301, 500)), 1000),
    "pm25": _gap(((0, 90, 0, 50), (91, 354, 51, 100), (355, 554, 101, 150), (555, 1254, 151, 200),
                  (1255, 2254, 201, 300), (2255, 3254, 301, 500)), 10),
    "pm10": _gap(((0, 54, 0, 50), (55, 154, 51, 100), (155, 254, 101, 150), (255, 354, 151, 200),
                  (355, 424, 201, 300), (425, 604, 301, 500)), 1),
    "co_8h": _gap(((0, 44, 0, 50), (45, 94, 51, 100), (95, 124, 101, 150), (125, 154, 151, 200),
                   (155, 304, 201, 300), (305, 504, 301, 500)), 10),
    "so2_24h": _gap(((305, 604, 201, 300), (605, 1004, 301, 500)), 1),
    "no2_1h": _gap(((0, 53, 0, 50), (54, 100, 51, 100), (101, 360, 101, 150), (361, 649, 151, 200),
                    (650, 1249, 201, 300), (1250, 2049, 301, 500)), 1),
}  # fmt: skip
# Before 6 May 2024: other PM2.5 bands, and the 301–500 range split in 301–400 / 401–500 for every pollutant.
US2012 = {
    **_US_COMMON,
    "o3_1h": _gap(((125, 164, 101, 150), (165, 204, 151, 200), (205, 404, 201, 300), (405, 504, 301, 400),
                   (505, 604, 401, 500)), 1000),
    "pm25": _gap(((0, 120, 0, 50), (121, 354, 51, 100), (355, 554, 101, 150), (555, 1504, 151, 200),
                  (1505, 2504, 201, 300), (2505, 3504, 301, 400), (3505, 5004, 401, 500)), 10),
    "pm10": _gap(((0, 54, 0, 50), (55, 154, 51, 100), (155, 254, 101, 150), (255, 354, 151, 200),
                  (355, 424, 201, 300), (425, 504, 301, 400), (505, 604, 401, 500)), 1),
    "co_8h": _gap(((0, 44, 0, 50), (45, 94, 51, 100), (95, 124, 101, 150), (125, 154, 151, 200),
                   (155, 304, 201, 300), (305, 404, 301, 400), (405, 504, 401, 500)), 10),
    "so2_24h": _gap(((305, 604, 201, 300), (605, 804, 301, 400), (805, 1004, 401, 500)), 1),
    "no2_1h": _gap(((0, 53, 0, 50), (54, 100, 51, 100), (101, 360, 101, 150), (361, 649, 151, 200),
                    (650, 1249, 201, 300), (1250, 1649, 301, 400), (1650, 2049, 401, 500)), 1),
}  # fmt: skip

# Korea CAI: gases ppm truncated to 0.001 (CO 0.01), PM µg/m³ truncated to 1.
_KR_BANDS = ((0, 50), (51, 100), (101, 250), (251, 500))


def _kr(bounds: tuple[tuple[int, int], ...], scale: float) -> Segments:
    return _gap(tuple((lo, hi, a, b) for (lo, hi), (a, b) in zip(bounds, _KR_BANDS, strict=True)), scale)


KR = {
    "so2": _kr(((0, 20), (21, 50), (51, 150), (151, 1000)), 1000),
    "no2": _kr(((0, 30), (31, 60), (61, 200), (201, 2000)), 1000),
    "co": _kr(((0, 200), (201, 900), (901, 1500), (1501, 5000)), 100),
    "o3": _kr(((0, 30), (31, 90), (91, 150), (151, 600)), 1000),
    "pm10": _kr(((0, 30), (31, 80), (81, 150), (151, 600)), 1),
    "pm25": _kr(((0, 15), (16, 35), (36, 75), (76, 500)), 1),
}

TABLES: dict[str, dict[str, Segments]] = {"vn": VN, "us": US2024, "us2012": US2012, "kr": KR,
                                          "us2012-stateair": US2012}  # fmt: skip

# The unit each standard's tables use for gases (PM is always µg/m³).
GAS_UNITS: dict[str, dict[str, str]] = {
    "vn": dict.fromkeys(("o3", "no2", "so2", "co"), "ugm3"),
    "us": {"o3": "ppm", "co": "ppm", "so2": "ppb", "no2": "ppb"},
    "us2012": {"o3": "ppm", "co": "ppm", "so2": "ppb", "no2": "ppb"},
    "us2012-stateair": {"o3": "ppm", "co": "ppm", "so2": "ppb", "no2": "ppb"},
    "kr": dict.fromkeys(("o3", "no2", "so2", "co"), "ppm"),
}

# --- categories ---------------------------------------------------------------------------------------------------
_GREEN, _YELLOW, _ORANGE, _RED, _PURPLE, _MAROON = (0, 228, 0), (255, 255, 0), (255, 126, 0), (255, 0, 0), \
    (143, 63, 151), (126, 0, 35)  # fmt: skip

VN_CATEGORIES = (
    _cat("good", "Tốt", "Good", _GREEN),
    _cat("moderate", "Trung bình", "Moderate", _YELLOW),
    _cat("poor", "Kém", "Poor", _ORANGE),
    _cat("bad", "Xấu", "Bad", _RED),
    _cat("very_bad", "Rất xấu", "Very bad", _PURPLE),
    _cat("hazardous", "Nguy hại", "Hazardous", _MAROON),
)
US_CATEGORIES = (
    _cat("good", "Tốt", "Good", _GREEN),
    _cat("moderate", "Trung bình", "Moderate", _YELLOW),
    _cat("unhealthy_sensitive", "Không tốt cho nhóm nhạy cảm", "Unhealthy for Sensitive Groups", _ORANGE),
    _cat("unhealthy", "Có hại cho sức khỏe", "Unhealthy", _RED),
    _cat("very_unhealthy", "Rất có hại cho sức khỏe", "Very Unhealthy", _PURPLE),
    _cat("hazardous", "Nguy hại", "Hazardous", _MAROON),
)
# AirKorea's web palette (blue, green, yellow-orange, red).
KR_CATEGORIES = (
    _cat("good", "Tốt", "Good", (50, 161, 255)),
    _cat("moderate", "Trung bình", "Moderate", (0, 199, 60)),
    _cat("unhealthy", "Không tốt cho sức khỏe", "Unhealthy", (253, 155, 90)),
    _cat("very_unhealthy", "Rất không tốt cho sức khỏe", "Very unhealthy", (255, 89, 89)),
)
CATEGORIES: dict[str, tuple[Category, ...]] = {"vn": VN_CATEGORIES, "us": US_CATEGORIES, "us2012": US_CATEGORIES,
                                               "kr": KR_CATEGORIES, "us2012-stateair": US_CATEGORIES}  # fmt: skip
# Upper index bound of each category (the last is open-ended).
CATEGORY_UPPER: dict[str, tuple[int, ...]] = {"vn": (50, 100, 150, 200, 300), "us": (50, 100, 150, 200, 300),
                                              "us2012": (50, 100, 150, 200, 300), "kr": (50, 100, 250),
                                              "us2012-stateair": (50, 100, 150, 200, 300)}  # fmt: skip


def category_index(standard: str, value: int) -> int:
    for i, upper in enumerate(CATEGORY_UPPER[standard]):
        if value <= upper:
            return i
    return len(CATEGORY_UPPER[standard])


def category_of(standard: str, value: int | None) -> Category | None:
    return None if value is None else CATEGORIES[standard][category_index(standard, value)]


# --- health advice: per category, (normal, sensitive), each (vi, en) -----------------------------------------------
Advice = tuple[tuple[str, str], tuple[str, str]]

# VN_AQI: the decision's own text (1459/QĐ-TCMT, table 3).
VN_ADVICE: tuple[Advice, ...] = (
    (
        ("Tự do thực hiện các hoạt động ngoài trời.", "Free to carry out outdoor activities."),
        ("Tự do thực hiện các hoạt động ngoài trời.", "Free to carry out outdoor activities."),
    ),
    (
        ("Tự do thực hiện các hoạt động ngoài trời.", "Free to carry out outdoor activities."),
        (
            "Nên theo dõi các triệu chứng như ho hoặc khó thở, nhưng vẫn có thể hoạt động bên ngoài.",
            "Watch for symptoms such as coughing or shortness of breath, but you may still be active outdoors.",
        ),
    ),
    (
        (
            "Những người có triệu chứng đau mắt, ho hoặc đau họng… nên cân nhắc giảm các hoạt động ngoài trời. Đối với "
            "học sinh, có thể hoạt động bên ngoài, nhưng nên giảm bớt việc tập thể dục kéo dài.",
            "People with sore eyes, a cough or a sore throat should consider reducing outdoor activity. "
            "Students may be outside but should reduce prolonged exercise.",
        ),
        (
            "Nên giảm các hoạt động mạnh và giảm thời gian hoạt động ngoài trời. Những người mắc bệnh hen suyễn có thể "
            "cần sử dụng thuốc thường xuyên hơn.",
            "Reduce strenuous activity and time spent outdoors. People with asthma may need their medication more "
            "often.",
        ),
    ),
    (
        (
            "Mọi người nên giảm các hoạt động mạnh khi ở ngoài trời, tránh tập thể dục kéo dài và nghỉ ngơi nhiều hơn "
            "trong nhà.",
            "Everyone should reduce strenuous outdoor activity, avoid prolonged exercise and rest more indoors.",
        ),
        (
            "Nên ở trong nhà và giảm hoạt động mạnh. Nếu cần thiết phải ra ngoài, hãy đeo khẩu trang đạt tiêu chuẩn.",
            "Stay indoors and reduce strenuous activity. If you must go out, wear a standard mask.",
        ),
    ),
    (
        (
            "Mọi người hạn chế tối đa các hoạt động ngoài trời và chuyển tất cả các hoạt động vào trong nhà. Nếu cần "
            "thiết phải ra ngoài, hãy đeo khẩu trang đạt tiêu chuẩn.",
            "Everyone should minimise outdoor activity and move all activities indoors. If you must go out, wear a "
            "standard mask.",
        ),
        ("Nên ở trong nhà và giảm hoạt động mạnh.", "Stay indoors and reduce strenuous activity."),
    ),
    (
        (
            "Mọi người nên ở trong nhà, đóng cửa ra vào và cửa sổ. Nếu cần thiết phải ra ngoài, hãy đeo khẩu trang đạt "
            "tiêu chuẩn.",
            "Everyone should stay indoors with doors and windows closed. If you must go out, wear a standard mask.",
        ),
        (
            "Mọi người nên ở trong nhà, đóng cửa ra vào và cửa sổ. Nếu cần thiết phải ra ngoài, hãy đeo khẩu trang đạt "
            "tiêu chuẩn.",
            "Everyone should stay indoors with doors and windows closed. If you must go out, wear a standard mask.",
        ),
    ),
)

_SENS_US = "People with heart or lung disease, older adults, children, and people of lower socioeconomic status"
_SENS_US_VI = "Người mắc bệnh tim hoặc phổi, người cao tuổi, trẻ em và người có điều kiện kinh tế - xã hội thấp"
# US EPA: AirNow's category descriptions (normal) and EPA's 2024 cautionary statements (sensitive groups).
US_ADVICE: tuple[Advice, ...] = (
    (("Chất lượng không khí đạt yêu cầu; ô nhiễm không khí gây ít hoặc không gây rủi ro.",
      "Air quality is satisfactory, and air pollution poses little or no risk."),
     ("Không cần thận trọng đặc biệt.", "None.")),
    (("Chất lượng không khí chấp nhận được.", "Air quality is acceptable."),
     ("Những người đặc biệt nhạy cảm nên cân nhắc giảm gắng sức kéo dài hoặc nặng.",
      "Unusually sensitive people should consider reducing prolonged or heavy exertion.")),
    (("Công chúng nói chung ít có khả năng bị ảnh hưởng.", "The general public is less likely to be affected."),
     (f"{_SENS_US_VI} nên giảm gắng sức kéo dài hoặc nặng.", f"{_SENS_US} should reduce prolonged or heavy "
                                                           "exertion.")),
    (("Mọi người khác nên giảm gắng sức kéo dài hoặc nặng.", "Everyone else should reduce prolonged or heavy "
                                                            "exertion."),
     (f"{_SENS_US_VI} nên tránh gắng sức kéo dài hoặc nặng.", f"{_SENS_US} should avoid prolonged or heavy "
                                                            "exertion.")),
    (("Mọi người khác nên tránh gắng sức kéo dài hoặc nặng.", "Everyone else should avoid prolonged or heavy "
                                                             "exertion."),
     (f"{_SENS_US_VI} nên tránh mọi hoạt động thể chất ngoài trời.", f"{_SENS_US} should avoid all physical "
                                                                   "activity outdoors.")),
    (("Mọi người nên tránh mọi hoạt động thể chất ngoài trời.", "Everyone should avoid all physical activity "
                                                               "outdoors."),
     (f"{_SENS_US_VI} nên ở trong nhà và giữ mức vận động thấp.", f"{_SENS_US} should remain indoors and keep "
                                                                "activity levels low.")),
)  # fmt: skip

# Korea CAI: AirKorea's behaviour guidance per grade (English wording of the official Korean text).
KR_ADVICE: tuple[Advice, ...] = (
    (
        (
            "Chất lượng không khí tốt; có thể hoạt động ngoài trời bình thường.",
            "Air quality is good; outdoor activities are fine.",
        ),
        (
            "Chất lượng không khí tốt; có thể hoạt động ngoài trời bình thường.",
            "Air quality is good; outdoor activities are fine.",
        ),
    ),
    (
        ("Không có hạn chế đặc biệt đối với hoạt động ngoài trời.", "No particular restrictions on outdoor activity."),
        (
            "Người nhạy cảm nên cẩn trọng khi hoạt động ngoài trời kéo dài hoặc gắng sức.",
            "Sensitive people should take care with prolonged or strenuous outdoor activity.",
        ),
    ),
    (
        (
            "Hạn chế hoạt động ngoài trời kéo dài hoặc gắng sức, nhất là khi đau mắt, ho hoặc đau họng.",
            "Limit prolonged or strenuous outdoor activity, especially with sore eyes, a cough or a sore throat.",
        ),
        (
            "Tránh hoạt động ngoài trời kéo dài hoặc gắng sức; đeo khẩu trang đạt chuẩn (KF) khi ra ngoài.",
            "Avoid prolonged or strenuous outdoor activity; wear a certified (KF) mask outdoors.",
        ),
    ),
    (
        (
            "Tránh hoạt động ngoài trời; nếu phải ra ngoài, hãy đeo khẩu trang đạt chuẩn (KF) và đóng cửa sổ.",
            "Avoid outdoor activity; if you must go out, wear a certified (KF) mask, and keep windows closed.",
        ),
        (
            "Ở trong nhà, tránh vận động thể chất và làm theo chỉ dẫn của bác sĩ.",
            "Stay indoors, avoid physical activity and follow your doctor's advice.",
        ),
    ),
)
ADVICE: dict[str, tuple[Advice, ...]] = {"vn": VN_ADVICE, "us": US_ADVICE, "us2012": US_ADVICE, "kr": KR_ADVICE,
                                         "us2012-stateair": US_ADVICE}  # fmt: skip


def advice_of(standard: str, value: int | None) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    normal, sensitive = ADVICE[standard][category_index(standard, value)]
    return {"normal": {"vi": normal[0], "en": normal[1]}, "sensitive": {"vi": sensitive[0], "en": sensitive[1]}}


# --- units --------------------------------------------------------------------------------------------------------
_UNIT_ALIASES = {"ugm3": "ugm3", "µg/m³": "ugm3", "μg/m³": "ugm3", "ug/m3": "ugm3", "µg/m3": "ugm3", "ppm": "ppm",
                 "ppb": "ppb", "mg/m3": "mg/m3", "mg/m³": "mg/m3", "mgm3": "mg/m3"}  # fmt: skip


def _factor(pollutant: str, unit: str) -> float:
    """µg/m³ per one ``unit`` of ``pollutant``."""
    u = _UNIT_ALIASES.get(unit)
    if u is None:
        raise ValueError(f"unknown unit {unit!r} (ugm3, µg/m³, ppm, ppb, mg/m3)")
    if pollutant not in POLLUTANTS:
        raise ValueError(f"unknown pollutant {pollutant!r} (one of {', '.join(POLLUTANTS)})")
    if u == "ugm3":
        return 1.0
    if u == "mg/m3":
        return 1000.0
    if pollutant not in MOLAR_MASS:
        raise ValueError(f"{pollutant} is particulate matter: ppm/ppb do not apply")
    return MOLAR_MASS[pollutant] / MOLAR_VOLUME * (1000.0 if u == "ppm" else 1.0)


def to_ugm3(pollutant: str, value: float, unit: str) -> float:
    """Convert a concentration in ``unit`` to µg/m³ (gases at 25 °C, 1 atm)."""
    return value * _factor(pollutant, unit)


def from_ugm3(pollutant: str, value: _V, unit: str) -> _V:
    """Convert a concentration in µg/m³ to ``unit``."""
    return value / _factor(pollutant, unit)


def unit_code(standard: str, pollutant: str) -> str:
    """The unit a standard's breakpoints (and so its concentrations) are in: "ugm3", "ppm" or "ppb". VN_AQI is all
    µg/m³; the US tables have O3 and CO in ppm, NO2 and SO2 in ppb; Korea's CAI has every gas in ppm."""
    if pollutant in ("pm25", "pm10") or standard == "vn":
        return "ugm3"
    return "ppm" if standard == "kr" or pollutant in ("o3", "co") else "ppb"


UNIT_SYMBOLS = {"ugm3": "µg/m³", "ppm": "ppm", "ppb": "ppb"}
