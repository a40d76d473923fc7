"""The surfaces of the running daemon: the control socket (which the CLI talks to), the
MQTT API and Home Assistant discovery, and text commands. Each only turns input into
commands and events into output; the core decides."""
