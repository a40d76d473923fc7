"""``stove-ctl doctor``: reach every relay and explain what is wrong, in plain words."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stove_ctl.config import (
    Config,
    MiioRelayConfig,
    MqttConfig,
    MqttRelayConfig,
    SimulatedRelayConfig,
)
from stove_ctl.drivers.broker import BrokerLink
from stove_ctl.drivers.miio import MiioRelay
from stove_ctl.errors import RelayAuthError, RelayBadReply, RelayError, RelayRejected
from stove_ctl.factory import build_miio
from stove_ctl.surfaces.mqtt_api import link_settings

TOKEN_HELP = "get the token again (README: Mi Home relays); it changes when the device is reset"


@dataclass
class Finding:
    relay: str
    ok: bool
    lines: list[str] = field(default_factory=list)


def local_networks() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks this machine's interfaces are on."""
    try:
        import netifaces

        networks = []
        for name in netifaces.interfaces():
            for entry in netifaces.ifaddresses(name).get(netifaces.AF_INET, []):
                if "addr" in entry and "netmask" in entry:
                    networks.append(
                        ipaddress.IPv4Network(f"{entry['addr']}/{entry['netmask']}", strict=False)
                    )
        return networks
    except (ImportError, OSError, ValueError):
        return [ipaddress.IPv4Network("127.0.0.0/8")]


def subnet_problem(
    host: ipaddress.IPv4Address, networks: Iterable[ipaddress.IPv4Network]
) -> str | None:
    """Explain why a host is probably out of reach, or None if it is on a local subnet."""
    nets = list(networks)
    if any(host in net for net in nets):
        return None
    ours = ", ".join(str(n) for n in nets if not n.is_loopback) or "none besides loopback"
    return (
        f"{host} is not on any subnet of this machine ({ours}); Mi Home devices only "
        "answer LAN requests from their own subnet, so put stove-ctl on the same network "
        "or VLAN as the relay"
    )


async def check_miio(name: str, cfg: MiioRelayConfig) -> Finding:
    finding = Finding(name, ok=True)
    relay: MiioRelay = build_miio(name, cfg)
    where = f"{cfg.host}:54321"
    try:
        off_subnet = subnet_problem(cfg.host, local_networks())
        if off_subnet:
            finding.lines.append(f"warning: {off_subnet}")
        try:
            answered = await relay.protocol.handshake(cfg.timeout_s)
        except RelayError as exc:
            finding.ok = False
            finding.lines.append(f"unreachable: {exc}; check the IP address in the config")
            return finding
        if not answered:
            finding.ok = False
            finding.lines.append(
                f"unreachable: no answer to the miIO handshake from {where} within "
                f"{cfg.timeout_s:g} s. Is the relay powered and on Wi-Fi, is the IP right "
                "(give it a fixed DHCP lease), and does the router isolate Wi-Fi clients?"
            )
            return finding
        try:
            info = await relay.info()
        except RelayAuthError:
            finding.ok = False
            finding.lines.append(
                f"wrong token: {where} answers the handshake but ignores requests sealed "
                f"with the configured token; {TOKEN_HELP}"
            )
            return finding
        except RelayError as exc:
            finding.ok = False
            finding.lines.append(f"miIO.info failed: {exc}")
            return finding
        model = str(info.get("model"))
        finding.lines.append(
            f"reached {model} (firmware {info.get('fw_ver')}, MAC {info.get('mac')}) at {where}"
        )
        if cfg.model is not None and cfg.model != model:
            finding.ok = False
            finding.lines.append(
                f"model mismatch: the config says {cfg.model}, the device at {cfg.host} is "
                f"{model}; is the IP address of another device?"
            )
        for channel in range(1, cfg.channels + 1):
            mapped = cfg.channel_map(channel)
            label = (
                "power (legacy)"
                if cfg.protocol == "legacy"
                else f"siid {mapped.siid} piid {mapped.piid}"
            )
            try:
                on = await relay.read(channel)
            except RelayRejected as exc:
                finding.ok = False
                finding.lines.append(
                    f"channel {channel} ({label}): the device refused it (code {exc.code}); "
                    f"the mapping does not fit {model}: see its MIoT spec"
                )
                continue
            except (RelayBadReply, RelayError) as exc:
                finding.ok = False
                finding.lines.append(f"channel {channel} ({label}): {exc}")
                continue
            finding.lines.append(f"channel {channel} ({label}): reads {'on' if on else 'off'}")
        return finding
    finally:
        await relay.close()


def check_broker(cfg: MqttConfig) -> Finding:
    """Connect once, synchronously, so that the failure itself can be explained."""
    settings = link_settings(cfg, f"{cfg.client_id}-doctor", None)
    finding = Finding(f"broker {cfg.host}:{cfg.port}", ok=True)
    client = BrokerLink(settings).raw_client()
    try:
        client.connect(cfg.host, cfg.port, keepalive=10)
    except ssl.SSLCertVerificationError as exc:
        finding.ok = False
        finding.lines.append(
            f"TLS: the broker's certificate does not verify ({exc.verify_message}); "
            "is mqtt.tls.ca_file the CA that signed it, and does it name this host?"
        )
        return finding
    except ssl.SSLError as exc:
        finding.ok = False
        finding.lines.append(f"TLS failed: {exc.reason or exc}; does the broker want TLS here?")
        return finding
    except ConnectionRefusedError:
        finding.ok = False
        finding.lines.append("connection refused: nothing listens there (host, port?)")
        return finding
    except OSError as exc:
        finding.ok = False
        finding.lines.append(f"cannot reach the broker: {exc.strerror or exc}")
        return finding
    result: dict[str, str] = {}

    def on_connect(c: Any, u: Any, f: Any, reason: Any, p: Any) -> None:
        result["reason"] = str(reason)
        result["failed"] = "yes" if reason.is_failure else ""

    client.on_connect = on_connect
    deadline = time.monotonic() + 5
    while "reason" not in result and time.monotonic() < deadline:
        client.loop(timeout=0.2)
    client.disconnect()
    if "reason" not in result:
        finding.ok = False
        finding.lines.append("connected, but the broker never answered the MQTT handshake")
    elif result["failed"]:
        finding.ok = False
        finding.lines.append(
            f"the broker refused us: {result['reason']} (check mqtt.username and the password)"
        )
    else:
        finding.lines.append(f"connected ({'TLS, ' if cfg.tls else ''}MQTT accepted)")
    return finding


async def run_doctor(config: Config) -> list[Finding]:
    checks = [
        check_miio(name, cfg)
        for name, cfg in config.relays.items()
        if isinstance(cfg, MiioRelayConfig)
    ]
    findings = list(await asyncio.gather(*checks))
    if config.mqtt is not None:
        findings.insert(0, await asyncio.to_thread(check_broker, config.mqtt))
    for name, cfg in config.relays.items():
        if isinstance(cfg, SimulatedRelayConfig):
            findings.append(Finding(name, True, ["simulated: in-process, nothing to reach"]))
        elif isinstance(cfg, MqttRelayConfig):
            findings.append(
                Finding(
                    name, True, [f"mqtt ({cfg.preset} {cfg.device}): reached through the broker"]
                )
            )
    return findings
