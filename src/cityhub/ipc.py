"""Arrow IPC stream bytes: what bulk responses, replays and the MQTT process exchange."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.ipc as paipc


def table_to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with paipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()
