"""Fact tables of the simulated city: where the air-quality stations, traffic detectors and water gauges are.

Written for CityHub from public sources (no file of ../shared/data is copied):

* Air-quality stations: the U.S. Embassy monitor (21.0215 N, 105.8189 E, from the StateAir export) and Hanoi
  stations reporting to the aqiin.net portal (``air/aqiin_vietnam/stations.csv``; coordinates geocoded by the
  portal's scraper, plausible for the named ward to a few hundred metres). Official stations report hourly
  means, as Hanoi's automatic stations publish them; low-cost optical sensors report every 5 minutes.
* Traffic detectors: one per major named road of ``geo/hanoi_main_roads_2016.gexf`` (OSM ~2016), at the middle of
  the road's edge nearest the road's centroid; highway class and, where tagged, ``maxspeed`` from OSM. Lanes per
  direction are approximate (from the roads' cross-sections as built). Free-flow speed: OSM ``maxspeed`` where
  tagged, else 80 km/h (motorway), 70 (trunk), 50 (primary), 40 (secondary), Vietnam's urban limits
  (Circular 31/2019/TT-BGTVT).
* Water gauges: the Red River hydrological stations Hà Nội (code 74165, by Long Biên bridge) and Sơn Tây (74162),
  the codes of ``water/red_river_levels_2015_6h.xlsx`` (locations approximate, to ~1 km), and a level gauge on
  the Tô Lịch river at Cầu Giấy (an urban drainage river; location illustrative).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

HOUR = timedelta(hours=1)
FIVE_MINUTES = timedelta(minutes=5)
QUARTER = timedelta(minutes=15)


@dataclass(frozen=True)
class Site:
    """A place that becomes one SensorThings Thing (with one Location)."""

    key: str  # ASCII slug, unique within its kind
    name: str  # place name (Vietnamese)
    lat: float  # WGS 84 degrees
    lon: float
    kind: str  # "air-quality station" | "traffic detector" | "water gauge"
    properties: dict[str, Any] = field(default_factory=dict)


# -- air quality -----------------------------------------------------------------------------------------------
OFFICIAL_POLLUTANTS = ("pm25", "pm10", "o3", "no2", "so2", "co")
LOWCOST_POLLUTANTS = ("pm25", "pm10")

# key, name, lat, lon, class ("official" hourly | "embassy" hourly PM2.5 only | "low-cost" every 5 minutes)
AIR_STATIONS: list[tuple[str, str, float, float, str]] = [
    ("us-embassy", "Đại sứ quán Hoa Kỳ", 21.0215, 105.8189, "embassy"),
    ("hoan-kiem", "Hoàn Kiếm", 21.0283, 105.8539, "official"),
    ("kim-lien", "Kim Liên", 21.0059, 105.8352, "official"),
    ("nguyen-van-cu", "556 Nguyễn Văn Cừ", 21.0499, 105.8812, "official"),
    ("pham-van-dong", "Phạm Văn Đồng", 21.0510, 105.7820, "official"),
    ("tay-mo", "Tây Mỗ", 21.0049, 105.7484, "official"),
    ("hoang-van-thu", "Hoàng Văn Thụ", 20.9875, 105.8601, "official"),
    ("tu-lien", "Tứ Liên", 21.0694, 105.8109, "official"),
    ("dien-bien", "Điện Biên", 21.0322, 105.8391, "official"),
    ("khuong-trung", "Khương Trung", 20.9917, 105.8074, "official"),
    ("van-ha", "Vân Hà (Đông Anh)", 21.1919, 105.8683, "official"),
    ("cau-dien", "Cầu Diễn", 21.0360, 105.7615, "official"),
    ("linh-dam", "Linh Đàm", 20.9714, 105.8280, "low-cost"),
    ("dam-trau", "Đầm Trấu", 21.0158, 105.8627, "low-cost"),
    ("nhan-my", "Nhân Mỹ", 21.0246, 105.7739, "low-cost"),
]

# The aqiin.net station each simulated station stands for (its two-week mean gives the station factor).
AQIIN_NAMES: dict[str, str] = {
    "us-embassy": "Hanoi US Embassy, Hanoi, Ha Noi, Vietnam",
    "hoan-kiem": "Hanoi Hoan Kiem District Police Headquarters, Hanoi, Ha Noi, Vietnam",
    "kim-lien": "Hanoi Kim Lien Kindergarten, Hanoi, Ha Noi, Vietnam",
    "nguyen-van-cu": "Phuong Ngoc Lam, Long Bien District, Ha Noi, Vietnam",
    "pham-van-dong": "Hanoi 36A Pham Van Dong, Hanoi, Ha Noi, Vietnam",
    "tay-mo": "Hanoi Ubnd Tay Mo, Hanoi, Ha Noi, Vietnam",
    "hoang-van-thu": "Hanoi Ubnd P Hoang Van Thu Hoang Mai, Hanoi, Ha Noi, Vietnam",
    "tu-lien": "Ha Noi Man non Tu Lien quan Tay Ho, Hanoi, Ha Noi, Vietnam",
    "dien-bien": "UBND Phuong Dien Bien Ba Dinh, Hanoi, Ha Noi, Vietnam",
    "khuong-trung": "Mam non Khuong Trung Thanh Xuan, Hanoi, Ha Noi, Vietnam",
    "van-ha": "Ha Noi Mam non Van Ha Dong Anh, Hanoi, Ha Noi, Vietnam",
    "cau-dien": "UBND P Cau Dien Nam Tu Liem, Hanoi, Ha Noi, Vietnam",
    "linh-dam": "Ban Dao Linh Dam, Hanoi, Ha Noi, Vietnam",
    "dam-trau": "Dam Trau phuong Bach Dang, Hanoi, Ha Noi, Vietnam",
    "nhan-my": "Nhan My, Nam Tu Liem, Ha Noi, Vietnam",
}

# -- traffic ---------------------------------------------------------------------------------------------------
# key, road (OSM name), OSM highway class, lat, lon, lanes per direction, free-flow speed km/h
TRAFFIC_DETECTORS: list[tuple[str, str, str, float, float, int, float]] = [
    ("vanh-dai-3", "Đường vành đai 3", "motorway", 20.99080, 105.80545, 2, 80),
    ("dai-lo-thang-long", "Đại Lộ Thăng Long", "motorway", 21.00715, 105.75828, 3, 80),
    ("phap-van", "Cao tốc Pháp Vân", "motorway", 20.95394, 105.85202, 3, 100),
    ("cau-nhat-tan", "Cầu Nhật Tân", "trunk", 21.09929, 105.82191, 4, 80),
    ("vo-chi-cong", "Võ Chí Công", "trunk", 21.07618, 105.81178, 3, 70),
    ("cau-thanh-tri", "Cầu Thanh Trì", "trunk", 20.98466, 105.89383, 3, 100),
    ("giai-phong", "Giải Phóng", "primary", 20.99602, 105.84137, 3, 50),
    ("nguyen-trai", "Nguyễn Trãi", "primary", 20.99425, 105.80708, 3, 50),
    ("truong-chinh", "Trường Chinh", "primary", 21.00070, 105.82916, 2, 50),
    ("duong-lang", "Đường Láng", "primary", 21.00984, 105.81258, 2, 50),
    ("pham-van-dong", "Phạm Văn Đồng", "primary", 21.05750, 105.78271, 3, 50),
    ("to-huu", "Tố Hữu", "primary", 20.97941, 105.76721, 3, 50),
    ("kim-ma", "Kim Mã", "primary", 21.03047, 105.81648, 2, 50),
    ("nguyen-chi-thanh", "Nguyễn Chí Thanh", "primary", 21.02581, 105.81172, 3, 50),
    ("lang-ha", "Láng Hạ", "primary", 21.01666, 105.81495, 3, 50),
    ("le-van-luong", "Lê Văn Lương", "primary", 21.00728, 105.80703, 3, 50),
    ("tran-duy-hung", "Trần Duy Hưng", "primary", 21.01261, 105.80164, 3, 50),
    ("khuat-duy-tien", "Khuất Duy Tiến", "primary", 20.99886, 105.79767, 3, 50),
    ("ho-tung-mau", "Hồ Tùng Mậu", "primary", 21.03986, 105.76690, 2, 50),
    ("cau-giay", "Cầu Giấy", "primary", 21.03344, 105.79792, 2, 50),
    ("pham-hung", "Phạm Hùng", "primary", 21.01807, 105.78213, 3, 50),
    ("nguyen-xien", "Nguyễn Xiển", "primary", 20.98456, 105.80810, 2, 50),
    ("yen-phu", "Yên Phụ", "primary", 21.04590, 105.84469, 2, 50),
    ("cau-vinh-tuy", "Cầu Vĩnh Tuy", "primary", 21.00291, 105.87475, 2, 50),
    ("xa-dan", "Xã Đàn", "secondary", 21.00975, 105.83801, 2, 40),
    ("hoang-quoc-viet", "Hoàng Quốc Việt", "secondary", 21.04607, 105.79410, 3, 40),
    ("dai-co-viet", "Đại Cồ Việt", "secondary", 21.00801, 105.84636, 2, 40),
    ("le-duan", "Lê Duẩn", "secondary", 21.01318, 105.84142, 2, 40),
]

# -- water -----------------------------------------------------------------------------------------------------
# key, name, lat, lon, river, gauge code (national network) or None, reporting interval
WATER_GAUGES: list[tuple[str, str, float, float, str, str | None, timedelta]] = [
    ("ha-noi", "Hà Nội (Long Biên)", 21.0440, 105.8600, "Sông Hồng", "74165", HOUR),
    ("son-tay", "Sơn Tây", 21.1570, 105.5040, "Sông Hồng", "74162", HOUR),
    ("to-lich", "Tô Lịch (Cầu Giấy)", 21.0331, 105.8013, "Sông Tô Lịch", None, QUARTER),
]
# Flood alarm levels I, II, III (cm, on the scale the gauges report) of Decision 05/2020/QĐ-TTg for the Red River;
# the Tô Lịch has no official levels. Published as the Thing's ``alarmLevels`` so clients can show alarm states.
ALARM_LEVELS_CM: dict[str, dict[str, float]] = {
    "74165": {"I": 950, "II": 1050, "III": 1150},
    "74162": {"I": 1240, "II": 1340, "III": 1440},
}


def sites() -> list[Site]:
    """Every simulated Thing, air-quality stations first, then traffic detectors, then water gauges."""
    out = []
    for key, name, lat, lon, cls in AIR_STATIONS:
        props: dict[str, Any] = {"class": cls, "interval": "PT5M" if cls == "low-cost" else "PT1H"}
        if cls == "embassy":
            props["operator"] = "U.S. Embassy Hanoi (AirNow)"
        out.append(Site(key, name, lat, lon, "air-quality station", props))
    for key, road, hw, lat, lon, lanes, vf in TRAFFIC_DETECTORS:
        props = {"road": road, "highway": hw, "lanesPerDirection": lanes, "freeFlowSpeed": vf, "interval": "PT5M"}
        out.append(Site(key, road, lat, lon, "traffic detector", props))
    for key, name, lat, lon, river, code, interval in WATER_GAUGES:
        props = {"river": river, "interval": "PT1H" if interval == HOUR else "PT15M"}
        if code:
            props["stationCode"] = code
        if code in ALARM_LEVELS_CM:
            props["alarmLevels"] = ALARM_LEVELS_CM[code]
        out.append(Site(key, name, lat, lon, "water gauge", props))
    return out
