"""Secrets that other users of the machine can read.

A miIO token opens the relay to anyone on the LAN; a broker password lets anyone send
commands. Both may sit in the config file itself or in files it names. If another
user of the machine can read them, say so at start-up (and in ``check-config``),
with the command that fixes it. This warns; it does not refuse to run, because a
daemon that will not start cannot cut the gas.
"""

from __future__ import annotations

import stat
from pathlib import Path

from stove_ctl.config import Config, MiioRelayConfig


def _open_to_others(path: Path) -> int | None:
    """The permission bits that let group or others read ``path``, or None."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return stat.S_IMODE(mode) if mode & (stat.S_IRGRP | stat.S_IROTH) else None


def exposed_secrets(config_path: Path, config: Config) -> list[str]:
    """One plain-words warning per readable place that holds a secret."""
    base = config_path.parent
    inline: list[str] = []
    files: list[tuple[str, Path]] = []
    for relay_id, relay in config.relays.items():
        if isinstance(relay, MiioRelayConfig):
            if relay.token_file is not None:
                files.append((f"relays.{relay_id}.token_file", relay.token_file))
            elif relay.token_env is None:
                inline.append(f"relays.{relay_id}.token")
    mqtt = config.mqtt
    if mqtt is not None:
        if mqtt.password_file is not None:
            files.append(("mqtt.password_file", mqtt.password_file))
        elif mqtt.password is not None and mqtt.password_env is None:
            inline.append("mqtt.password")
        if mqtt.tls is not None and mqtt.tls.key_file is not None:
            files.append(("mqtt.tls.key_file", mqtt.tls.key_file))
    if config.web is not None and config.web.token_file is not None:
        files.append(("web.token_file", config.web.token_file))
    warnings = []
    mode = _open_to_others(config_path) if inline else None
    if mode is not None:
        warnings.append(
            f"{config_path} holds secrets ({', '.join(inline)}) and other users can read it "
            f"(mode {mode:04o}): run chmod 600 {config_path}"
        )
    for field, path in files:
        full = path if path.is_absolute() else base / path
        mode = _open_to_others(full)
        if mode is not None:
            warnings.append(
                f"{full} ({field}) is readable by other users (mode {mode:04o}): "
                f"run chmod 600 {full}"
            )
    return warnings
