"""Getting Observations in: HTTP bodies, files, MQTT, and the pipeline and writer they share."""
