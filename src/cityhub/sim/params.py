"""Parameters of the simulated city: fitted ones (from the real series in ../shared/data, by
``python -m cityhub.sim.fit``, which prints them again under the same names) and stated assumptions.

Times of day are local Hanoi time (UTC+7); months are calendar months 1–12 (index 0 = January).
"""

from __future__ import annotations

# --- fitted: PM2.5 at the U.S. Embassy ----------------------------------------------------------------------------
# air/stateair_hanoi, 2016–2017, 16,959 valid hours (Raw Conc., QC Valid, deduplicated on Date (LT)).
# Mean of the hourly values per calendar month, µg/m³: the winter peak (Dec–Feb) and the summer low (Jun–Aug).
PM25_MONTHLY_MEAN = [67.0, 64.9, 49.6, 41.5, 30.2, 28.5, 23.5, 28.4, 39.6, 52.4, 57.1, 78.4]
# Hour-of-day mean over month mean, averaged over months (mean 1): morning peak 09–10 h, afternoon low 15–17 h
# (deeper mixing layer), evening peak 21–22 h.
PM25_DIURNAL = [1.005, 0.994, 0.948, 1.0, 0.995, 1.022, 1.07, 1.094, 1.11, 1.142, 1.141, 1.065,
                1.024, 0.958, 0.904, 0.823, 0.805, 0.811, 0.84, 0.93, 1.025, 1.105, 1.128, 1.064]  # fmt: skip
# Standard deviation per month of the log anomaly (log value − month mean log − hour mean log).
PM25_LOG_SD = [0.682, 0.582, 0.791, 0.507, 0.559, 0.665, 0.823, 0.781, 0.695, 0.787, 0.703, 0.598]
# Autocorrelation of the log anomaly at lags 1 h–14 d fitted as w·φ_slow^lag + (1−w)·φ_fast^lag: a slow part
# (e-folding 55 h: multi-day episodes such as winter inversions) and a fast part (3.6 h).
PM25_SLOW_SHARE = 0.59
PM25_PHI_SLOW = 0.982  # per hour
PM25_PHI_FAST = 0.76  # per hour

# --- fitted: between stations ---------------------------------------------------------------------------------------
# air/aqiin_vietnam, 48 Hanoi stations with ≥ 300 hours, 14–28 May 2026: median pairwise correlation of hourly log
# PM2.5 anomalies (each station's hour-of-day mean log removed).
PM25_STATION_CORR = 0.919
# The share of a station's log-anomaly variance that is its own, solved so that the same two-week estimate on the
# simulated stations gives PM25_STATION_CORR (fit.local_share; a two-week window misses part of the slow shared
# variance, so this is less than 1 − PM25_STATION_CORR).
PM25_LOCAL_SHARE = 0.07
# Each station's two-week mean PM2.5 over the mean of the 48 stations (facts.AQIIN_NAMES gives the station).
STATION_FACTORS = {
    "us-embassy": 1.001, "hoan-kiem": 1.009, "kim-lien": 0.963, "nguyen-van-cu": 1.032, "pham-van-dong": 1.013,
    "tay-mo": 0.983, "hoang-van-thu": 0.976, "tu-lien": 1.065, "dien-bien": 0.986, "khuong-trung": 0.993,
    "van-ha": 1.073, "cau-dien": 1.009, "linh-dam": 0.94, "dam-trau": 0.995, "nhan-my": 0.994,
}  # fmt: skip

# --- fitted: other pollutants ---------------------------------------------------------------------------------------
# air/openmeteo_hanoi TRAIN/VALID/TEST (CAMS model output at Cầu Giấy, hourly, Mar 2023–Mar 2026, µg/m³).
# Monthly mean ratio to PM2.5 (co-emitted: PM10, NO2, SO2, CO) or monthly mean in µg/m³ (O3, photochemical).
GAS_LEVEL = {
    "pm10": [1.102, 1.133, 1.253, 1.299, 1.297, 1.271, 1.252, 1.297, 1.273, 1.301, 1.227, 1.111],
    "o3": [52.823, 46.501, 65.287, 84.792, 94.112, 93.233, 93.312, 94.457, 79.3, 69.795, 56.867, 50.369],
    "no2": [0.607, 0.666, 0.61, 0.529, 0.613, 0.621, 0.594, 0.549, 0.635, 0.686, 0.701, 0.594],
    "so2": [0.729, 0.775, 0.602, 0.503, 0.666, 0.674, 0.802, 0.739, 0.803, 0.819, 0.835, 0.804],
    "co": [14.73, 16.97, 13.74, 11.27, 13.94, 13.67, 14.14, 13.75, 15.06, 18.88, 20.5, 15.44],
}
# Hour-of-day profiles (mean 1): O3 peaks mid-afternoon, NO2 and CO with the evening rush and the night's shallow
# boundary layer. PM10 follows PM2.5's profile (its coarse part is modelled as a ratio).
GAS_DIURNAL = {
    "o3": [0.507, 0.484, 0.462, 0.449, 0.443, 0.421, 0.406, 0.459, 0.652, 0.926, 1.201, 1.452,
           1.695, 1.876, 1.976, 2.009, 1.928, 1.665, 1.29, 0.971, 0.867, 0.722, 0.6, 0.541],
    "no2": [1.368, 1.303, 1.245, 1.187, 1.14, 1.135, 1.145, 1.121, 1.002, 0.833, 0.677, 0.555,
            0.449, 0.386, 0.355, 0.365, 0.478, 0.774, 1.169, 1.461, 1.471, 1.482, 1.47, 1.428],
    "so2": [1.134, 1.079, 1.041, 1.009, 0.999, 1.029, 1.081, 1.075, 1.071, 1.062, 1.029, 0.947,
            0.841, 0.763, 0.725, 0.714, 0.744, 0.84, 0.976, 1.089, 1.135, 1.196, 1.226, 1.195],
    "co": [1.137, 1.051, 0.973, 0.905, 0.881, 0.951, 1.066, 1.133, 1.057, 0.922, 0.804, 0.736,
           0.687, 0.661, 0.64, 0.641, 0.718, 0.944, 1.246, 1.459, 1.459, 1.391, 1.31, 1.229],
}  # fmt: skip
# Regression of each log anomaly on PM2.5's: slope β, residual standard deviation, residual lag-1 h autocorrelation.
GAS_BETA = {"pm10": 0.926, "o3": -0.037, "no2": 0.49, "so2": 0.574, "co": 0.459}
GAS_SD = {"pm10": 0.165, "o3": 0.627, "no2": 0.394, "so2": 0.329, "co": 0.331}
GAS_PHI = {"pm10": 0.998, "o3": 0.952, "no2": 0.94, "so2": 0.969, "co": 0.951}

# --- fitted: rain (drives the Tô Lịch level) -------------------------------------------------------------------------
# Same Open-Meteo files, hourly precipitation: a two-state (wet ≥ 0.1 mm/h, dry) Markov chain per month and the mean
# intensity of wet hours (mm/h; drawn from an exponential distribution).
RAIN_P_WET_AFTER_DRY = [0.045, 0.077, 0.051, 0.054, 0.106, 0.117, 0.128, 0.16, 0.134, 0.055, 0.033, 0.038]
RAIN_P_WET_AFTER_WET = [0.781, 0.772, 0.716, 0.751, 0.758, 0.821, 0.794, 0.792, 0.826, 0.703, 0.768, 0.613]
RAIN_WET_MEAN_MM = [0.4, 0.29, 0.45, 0.66, 1.04, 1.52, 1.25, 1.14, 1.4, 1.2, 0.64, 0.33]

# --- fitted: Red River -----------------------------------------------------------------------------------------------
# water/red_river_levels_2015_6h.xlsx, 2015 (a low-water year), 6-hourly at 01, 07, 13, 19 h; cm above the gauge
# datum. 74162 = Sơn Tây, 74165 = Hà Nội. Monthly means: low water Feb–Mar, flood season Jun–Oct (peak Aug–Sep).
RIVER_MONTHLY_MEAN = {
    "74162": [426.6, 370.8, 294.3, 459.0, 575.0, 488.2, 454.2, 695.0, 675.9, 595.4, 418.4, 369.3],
    "74165": [160.9, 140.7, 99.8, 173.2, 239.6, 194.4, 171.0, 340.0, 327.2, 269.5, 179.9, 150.1],
}
# Standard deviation per month of the level about its month's mean (cm): flood waves and reservoir releases.
RIVER_SD = {
    "74162": [99.3, 142.3, 43.5, 32.5, 60.5, 59.7, 84.4, 92.2, 63.9, 59.5, 77.4, 59.2],
    "74165": [54.0, 69.8, 27.7, 20.7, 44.9, 34.2, 49.2, 88.9, 49.5, 33.9, 46.5, 32.8],
}
# Hourly AR(1) coefficient fitted to the anomalies' mean autocorrelation at 6 h–5 d (e-folding ≈ 3.6 days),
# the correlation of the two gauges' anomalies, and Hà Nội's mean daily cycle (Hòa Bình's peaking releases).
RIVER_PHI_HOURLY = 0.98854
RIVER_CORR = 0.897
HANOI_DAILY_AMPLITUDE_CM = 4.7
HANOI_DAILY_PEAK_HOUR = 12.5

# --- fitted: traffic speed shape ------------------------------------------------------------------------------------
# traffic/metr_la/metr_la_1week_speed.csv (207 Los Angeles loop detectors, 1–7 March 2012, 5 min): speed over each
# detector's 95th percentile, averaged over detectors. Weekdays: base − Σ A·exp(−½((h − μ)/s)²) with (A, μ h, s h);
# Saturday and Sunday: (base, (A, μ, s)).
SPEED_BASE = 0.916
SPEED_DIPS_WEEKDAY = [(0.186, 8.5, 1.25), (0.205, 17.42, 1.45)]
SPEED_DIP_SATURDAY = (0.948, (0.128, 15.75, 3.4))
SPEED_DIP_SUNDAY = (0.971, (0.051, 16.42, 4.0))
# Deciles of a detector's rush-hour drop relative to the network's (some detectors barely slow: off-peak direction).
DETECTOR_DEPTH_DECILES = [-0.28, -0.03, 0.3, 0.69, 1.08, 1.3, 1.54, 1.8, 2.25]
# A detector's deviation from its own mean weekday: standard deviation (speed ratio) and lag-1 (5 min) correlation.
SPEED_NOISE_SD = 0.096
SPEED_NOISE_PHI = 0.64

# --- assumptions (no series to fit them on) --------------------------------------------------------------------------
# Hanoi's rush hours are 7–9 h and 17–19 h; the METR-LA dips (centred 8.5 h and 17.4 h) are moved to their middles.
HANOI_RUSH_CENTRES = (8.0, 18.0)
# Every major Hanoi road slows at rush hour: depths drawn from the deciles above are clipped to this range.
DETECTOR_DEPTH_RANGE = (0.25, 2.5)
# Flow in passenger-car units per hour per lane (the Highway Capacity Manual's base saturation flow), and demand as a
# share of capacity: night floor, daytime plateau (06–22 h), extra at the rush peaks; weekends have no rush extra.
CAPACITY_PER_LANE = 1800.0
FLOW_NIGHT, FLOW_DAY, FLOW_RUSH, FLOW_WEEKEND_DAY = 0.06, 0.50, 0.40, 0.42
FLOW_NOISE_SD = 0.08  # log, AR(1) with SPEED_NOISE_PHI
# Low-cost optical PM sensors: multiplicative noise (log sd) about the local hourly level, lag-1 (5 min) correlation.
LOWCOST_NOISE_SD, LOWCOST_NOISE_PHI = 0.10, 0.5
# Tô Lịch at Cầu Giấy (no level series available): a dry-weather level with the daily wastewater cycle, plus rain
# routed through a linear reservoir (recession time constant, cm of rise per mm of rain on the catchment).
TO_LICH_BASE_CM = 120.0
TO_LICH_DAILY_AMPLITUDE_CM, TO_LICH_DAILY_PEAK_HOUR = 8.0, 10.0
TO_LICH_TAU_H = 6.0
TO_LICH_CM_PER_MM = 5.0  # so a 20 mm storm raises it by ~0.8 m
TO_LICH_NOISE_CM = 1.0
