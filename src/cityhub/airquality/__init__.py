"""Air-quality indices: VN_AQI (Decision 1459/QĐ-TCMT), US EPA AQI (2024 and 2012 tables) with NowCast, and
the Korea CAI; scalar (``indices``), vectorised (``batch``) and school guidance (``school``)."""

from cityhub.airquality.batch import daily_batch, hourly_batch
from cityhub.airquality.indices import IndexResult, daily_index, hourly_index, nowcast
from cityhub.airquality.school import school_guidance
from cityhub.airquality.tables import INDEX_NAMES, POLLUTANTS, STANDARDS, Category, from_ugm3, to_ugm3

__all__ = [
    "INDEX_NAMES",
    "POLLUTANTS",
    "STANDARDS",
    "Category",
    "IndexResult",
    "daily_batch",
    "daily_index",
    "from_ugm3",
    "hourly_batch",
    "hourly_index",
    "nowcast",
    "school_guidance",
    "to_ugm3",
]
