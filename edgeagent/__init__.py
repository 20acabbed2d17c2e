"""edgeagent: an MQTT edge agent whose device key never leaves a hardware token."""

__version__ = "0.1.0"
