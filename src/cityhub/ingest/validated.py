"""What validation of a body gives: the rows to store and the rows refused, with their reasons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa


@dataclass
class Validated:
    """Rows ready to append (OBSERVATION_BATCH_SCHEMA less ``id``) and the rows refused with reasons."""

    good: pa.Table
    good_index: np.ndarray  # index of each good row in the input
    thing_ids: np.ndarray  # owning Thing of each good row (for device keys)
    bad: list[dict[str, Any]]
    bad_count: int
