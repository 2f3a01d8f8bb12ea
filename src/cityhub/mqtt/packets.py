"""QoS 0 publishing of a whole batch as one write on paho-mqtt's connection.

Why not ``Client.publish`` per message: it builds a message-info object with its own condition variable,
queues each packet and sends it with a system call of its own, about 30 µs per message under the GIL. The
hub republishes every stored Observation, so at 20,000 Observations/s paho's publishing alone took the CPU
that ingestion needed. A QoS 0 PUBLISH needs no state, so a batch of them becomes one buffer, queued on
paho's outgoing packet queue (``_packet_queue``, private in paho-mqtt 2.x; pinned below 3 and covered by
tests). It must be the hub's own connection: MQTT 5's No Local option then keeps the hub from receiving
what it publishes.
"""

from __future__ import annotations

import struct

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBLISH


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: bytes, payload: bytes) -> bytes:
    """An MQTT 5 PUBLISH packet at QoS 0, no retain, no properties."""
    body = struct.pack("!H", len(topic)) + topic + b"\x00" + payload
    return b"\x30" + _varint(len(body)) + body


def publish_batch(client: mqtt.Client, messages: list[tuple[str, bytes]]) -> mqtt.MQTTMessageInfo | None:
    """Queue the messages (QoS 0) as one write; None when not connected (QoS 0: at most once). paho marks the
    info published once the buffer is written, or with a non-zero ``rc`` when the connection broke first: the
    caller's measure of what is still queued."""
    if not client.is_connected():
        return None
    buf = b"".join(publish_packet(t.encode(), p) for t, p in messages)
    info = mqtt.MQTTMessageInfo(0)  # one info stands for the whole batch
    if client._packet_queue(PUBLISH, buf, 0, 0, info) != mqtt.MQTT_ERR_SUCCESS:
        return None
    return info
