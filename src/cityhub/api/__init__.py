"""The HTTP API: the routers (SensorThings, alerts, AQI, exports, dead letters, bulk ingest) and their deps."""
