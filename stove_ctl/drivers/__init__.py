"""Relay drivers: each turns one device protocol into the ``Relay`` interface."""
