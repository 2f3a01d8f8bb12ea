"""``cityhub aqi``: indices for a file of hourly station data (CSV or Parquet in, CSV or Parquet out)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cityhub.airquality.batch import daily_batch, hourly_batch
from cityhub.airquality.tables import MOLAR_MASS, POLLUTANTS, STANDARDS, to_ugm3

_TZ = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_tz(tz: str) -> int:
    """'+07:00' → 420 minutes east of UTC."""
    m = _TZ.match(tz.strip())
    if not m:
        raise ValueError(f"--tz must look like +07:00, not {tz!r}")
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return minutes if m.group(1) == "+" else -minutes


def _read(path: Path) -> pa.Table:
    if path.suffix.lower() in (".parquet", ".pq"):
        return pq.read_table(path)
    types = {"station": pa.string(), "time": pa.string(), **dict.fromkeys(POLLUTANTS, pa.float64())}
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True))


def _times(col: pa.ChunkedArray, tz: str, offset_min: int) -> pa.Array:
    """UTC timestamps; local times without an offset are taken in ``tz``."""
    if pa.types.is_timestamp(col.type):
        if col.type.tz is not None:
            return pc.cast(col, pa.timestamp("s", "UTC")).combine_chunks()
        secs = pc.cast(pc.cast(col, pa.timestamp("s")), pa.int64()).to_numpy(zero_copy_only=False) - offset_min * 60
        return pa.array(secs, pa.timestamp("s", "UTC"))
    s = pc.utf8_trim_whitespace(pc.cast(col, pa.string())).combine_chunks()
    s = pc.replace_substring(s, " ", "T", max_replacements=1)
    has_zone = pc.match_substring_regex(s, r"(Z|[+-]\d{2}:?\d{2})$")
    s = pc.if_else(has_zone, s, pc.binary_join_element_wise(s, tz, ""))
    s = pc.replace_substring_regex(s, r"Z$", "+00:00")
    s = pc.replace_substring_regex(s, r"T(\d{2}):(\d{2})([+-])", "T\\1:\\2:00\\3")  # seconds are optional
    s = pc.replace_substring_regex(s, r"\.\d+([+-])", "\\1")  # fractional seconds: floored to the hour anyway
    try:
        return pc.cast(pc.strptime(s, "%Y-%m-%dT%H:%M:%S%z", "s"), pa.timestamp("s", "UTC"))
    except pa.ArrowInvalid as exc:
        raise ValueError(f"bad time (ISO 8601 expected, e.g. 2026-01-15T08:00:00+07:00): {exc}") from None


def _format_times(col: pa.Array, offset_min: int, tz: str) -> pa.Array:
    secs = pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False) + offset_min * 60
    text = np.char.add(np.datetime_as_string(secs.astype("datetime64[s]"), unit="s"), tz)
    return pa.array(text)


def run_aqi(src: Path, dst: Path, standard: str, period: str, units: str = "ugm3", tz: str = "+07:00") -> int:
    """Compute the index per station and hour / local day; returns the number of rows written."""
    if standard not in STANDARDS:
        raise ValueError(f"--standard must be one of {', '.join(STANDARDS)}")
    if period not in ("hour", "day"):
        raise ValueError("--period must be hour or day")
    if units not in ("ugm3", "ppm", "ppb"):
        raise ValueError("--units must be ugm3, ppm or ppb")
    offset = parse_tz(tz)
    tz_name = f"{'+' if offset >= 0 else '-'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    table = _read(src)
    missing = {"time", "station"} - set(table.column_names)
    if missing:
        raise ValueError(f"{src}: missing column(s) {', '.join(sorted(missing))}")
    cols: dict[str, pa.Array] = {"station": pc.cast(table["station"], pa.string()).combine_chunks(),
                                 "time": _times(table["time"], tz_name, offset)}  # fmt: skip
    for p in POLLUTANTS:
        if p in table.column_names:
            vals = pc.cast(table[p], pa.float64()).combine_chunks()
            if units != "ugm3" and p in MOLAR_MASS:
                vals = pc.multiply(vals, to_ugm3(p, 1.0, units))  # PM is always µg/m³
            cols[p] = vals
    data = pa.table(cols)
    out = hourly_batch(data, standard) if period == "hour" else daily_batch(data, standard, offset)
    if dst.suffix.lower() in (".parquet", ".pq"):
        out = out.set_column(1, "time", pc.cast(out["time"], pa.timestamp("s", tz_name)))
        pq.write_table(out, dst)
    else:
        out = out.set_column(1, "time", _format_times(out["time"].combine_chunks(), offset, tz_name))
        pacsv.write_csv(out, dst)
    return out.num_rows
