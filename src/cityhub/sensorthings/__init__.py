"""The OGC SensorThings API v1.1: data model, query options, ``$filter``, and the service behind the routes."""
