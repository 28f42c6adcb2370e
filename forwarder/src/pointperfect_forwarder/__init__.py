"""PointPerfect correction forwarder: MQTT or NTRIP corrections and dynamic keys to a GNSS receiver."""

__version__ = "0.1.0"
