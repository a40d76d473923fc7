"""The core: burners and the controller, commands, timers, rules, saved state and events.

It knows burners and commands, not wire formats: relays come in through the interface in
``stove_ctl.drivers.relay``, and the surfaces (``stove_ctl.surfaces``) turn input into
commands and events into output.
"""
