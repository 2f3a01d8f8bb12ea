"""CityHub: an open smart-city data hub for Hanoi built on the OGC SensorThings API v1.1."""

__version__ = "0.1.0"
