"""stove-ctl: a local-first gas stove shutoff controller.

It cuts a burner's flame-failure (thermocouple) circuit through a smart relay for a
few seconds: the gas valve snaps shut and only a person at the knob can open it again.
"""

__version__ = "0.1.0"
