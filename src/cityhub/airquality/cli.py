"""``cityhub aqi``: indices for a file of hourly station data (CSV or Parquet in, CSV or Parquet out)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cityhub.airquality.batch import daily_batch, hourly_batch
from cityhub.airquality.tables import MOLAR_MASS, POLLUTANTS, STANDARDS, pollutant_of, to_ugm3
from cityhub.timefmt import iso_array

_TZ = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_tz(tz: str) -> int:
    """'+07:00' → 420 minutes east of UTC."""
    m = _TZ.match(tz.strip())
    if not m:
        raise ValueError(f"--tz must look like +07:00, not {tz!r}")
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return minutes if m.group(1) == "+" else -minutes


OUTPUT_SUFFIXES = (".csv", ".parquet", ".pq")
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def _read(path: Path) -> pa.Table:
    if path.suffix.lower() in (".parquet", ".pq"):
        return pq.read_table(path)
    # Every column as text: numbers are parsed below, so that a bad one is reported with its row and column.
    with path.open("rb") as f:
        header = pacsv.open_csv(f).schema.names
    types = dict.fromkeys(header, pa.string())
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True))


def pollutant_columns(names: list[str], src: Path) -> tuple[dict[str, str], list[str]]:
    """Which column holds each pollutant, by its usual spellings ("PM2.5", "pm2_5", "Ozone"...), and the columns
    that are none of time, station or a pollutant (reported as ignored, not dropped silently)."""
    found: dict[str, str] = {}
    ignored = []
    for name in names:
        if name in ("time", "station"):
            continue
        p = pollutant_of(name, None)
        if p is None:
            ignored.append(name)
        elif p in found:
            raise ValueError(f"{src}: columns {found[p]!r} and {name!r} both hold {p}: keep one")
        else:
            found[p] = name
    return found, ignored


def _numbers(col: pa.ChunkedArray, src: Path, name: str, header_lines: int) -> pa.Array:
    """A pollutant column as float64; a value that is not a number is an error naming its row and column."""
    if pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_decimal(col.type):
        return pc.cast(col, pa.float64()).combine_chunks()
    text = pc.cast(col, pa.string()).combine_chunks()
    bad = pc.and_(pc.invert(pc.match_substring_regex(text, _NUMBER)), pc.is_valid(text))
    bad = pc.and_(bad, pc.not_equal(pc.utf8_trim_whitespace(text), ""))
    if pc.any(bad).as_py():
        i = pc.index(bad, True).as_py()
        raise ValueError(f"{src}: row {i + 1} (line {i + 1 + header_lines}), column {name!r}: {text[i].as_py()!r} "
                         "is not a number")  # fmt: skip
    blank = pc.equal(pc.utf8_trim_whitespace(text), "")
    return pc.cast(pc.if_else(blank, pa.scalar(None, pa.string()), text), pa.float64())


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


def _local_dates(col: pa.Array, offset_min: int) -> pa.Array:
    """The local date (YYYY-MM-DD) of each UTC day start, at ``offset_min`` minutes east of UTC."""
    secs = pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False) + offset_min * 60
    return pa.array(np.datetime_as_string(secs.astype("datetime64[s]"), unit="D"))


@dataclass
class AqiRun:
    rows: int  # written
    columns: dict[str, str]  # pollutant → the input column read for it
    ignored: list[str]  # input columns that are neither time, station nor a pollutant
    waiting: int = 0  # rows without an index while a measured particulate has no sub-index yet


def run_aqi(src: Path, dst: Path, standard: str, period: str, units: str = "ugm3", tz: str = "+07:00") -> AqiRun:
    """Compute the index per station and hour / local day into ``dst``."""
    if standard not in STANDARDS:
        raise ValueError(f"--standard must be one of {', '.join(STANDARDS)}")
    if period not in ("hour", "day"):
        raise ValueError("--period must be hour or day")
    if units not in ("ugm3", "ppm", "ppb"):
        raise ValueError("--units must be ugm3, ppm or ppb")
    if dst.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"-o {dst}: CityHub writes .csv or .parquet, not {dst.suffix or 'a file without a suffix'}")
    offset = parse_tz(tz)
    tz_name = f"{'+' if offset >= 0 else '-'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    table = _read(src)
    missing = {"time", "station"} - set(table.column_names)
    if missing:
        raise ValueError(f"{src}: no column(s) named {', '.join(sorted(missing))} (columns: "
                         f"{', '.join(table.column_names[:20])})")  # fmt: skip
    columns, ignored = pollutant_columns(table.column_names, src)
    if not columns:
        raise ValueError(f"{src}: no pollutant column (pm25, pm10, o3, no2, so2, co, or PM2.5, Ozone... ; columns: "
                         f"{', '.join(table.column_names[:20])})")  # fmt: skip
    header_lines = 0 if src.suffix.lower() in (".parquet", ".pq") else 1
    cols: dict[str, pa.Array] = {"station": pc.cast(table["station"], pa.string()).combine_chunks(),
                                 "time": _times(table["time"], tz_name, offset)}  # fmt: skip
    for p in POLLUTANTS:
        if p in columns:
            vals = _numbers(table[columns[p]], src, columns[p], header_lines)
            if units != "ugm3" and p in MOLAR_MASS:
                vals = pc.multiply(vals, to_ugm3(p, 1.0, units))  # PM is always µg/m³
            cols[p] = vals
    data = pa.table(cols)
    out = hourly_batch(data, standard) if period == "hour" else daily_batch(data, standard, offset)
    # Times as in the rest of CityHub: UTC, ISO 8601 with "T" and "Z" (the start of the hour, or of the local day);
    # a day also gets its local date, which is how people name it.
    utc = pc.cast(out["time"], pa.timestamp("s", "UTC"))
    if period == "day":
        out = out.add_column(2, "date", _local_dates(utc.combine_chunks(), offset))
    if dst.suffix.lower() in (".parquet", ".pq"):
        pq.write_table(out.set_column(1, "time", utc), dst)
    else:
        pacsv.write_csv(out.set_column(1, "time", pa.array(iso_array(utc), pa.string())), dst)
    no_index = pc.and_(pc.is_null(out["aqi"]), pc.match_substring_regex(out["missing"], "pm"))
    return AqiRun(out.num_rows, columns, ignored, int(pc.sum(no_index).as_py() or 0))
