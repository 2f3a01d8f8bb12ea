"""The MQTT side of the hub (a domain): the SensorThings MQTT extension and device topic mappings in, what the hub
stores out. ``bridge`` (the domain), ``child`` (the connection, in a process of its own), ``packets`` (QoS 0
publishing in batches), ``mappings`` (the YAML topic mappings)."""
