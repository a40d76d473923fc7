"""``stove-ctl doctor``: reach every relay and explain what is wrong, in plain words."""

from __future__ import annotations

import asyncio
import contextlib
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
from stove_ctl.drivers.mqtt import MqttRelay
from stove_ctl.errors import (
    RelayAuthError,
    RelayBadReply,
    RelayError,
    RelayRejected,
    RelayUnreachable,
)
from stove_ctl.factory import build_miio, build_mqtt_relay
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
        import ifaddr

        networks = []
        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                if ip.is_IPv4:
                    networks.append(
                        ipaddress.IPv4Network(f"{ip.ip}/{ip.network_prefix}", strict=False)
                    )
        return networks or [ipaddress.IPv4Network("127.0.0.0/8")]
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


# How long each MQTT relay is given to answer (or its own timeout_s, if longer). All
# are asked at once: ten relays take this long, not ten times it.
ASK_S = 3.0
READ_ONLY = "asked for its state only (doctor never switches a relay)"


def burner_channels(config: Config, relay: str, channels: int) -> list[int]:
    """The channels of ``relay`` that burners use (every channel if none does)."""
    used = sorted(
        {
            burner.relay.channel
            for stove in config.stoves
            for burner in stove.burners
            if burner.relay.device == relay
        }
    )
    return used or list(range(1, channels + 1))


def no_answer_help(cfg: MqttRelayConfig, relay: MqttRelay, channel: int, wait_s: float) -> str:
    """What to check, for this preset, when a channel's state never came."""
    query, states, _ = relay.topics(channel)
    if query is None:
        asked = f"no state on {states[0]} within {wait_s:g} s"
    elif cfg.preset == "shelly_gen2":
        asked = (
            f"no answer within {wait_s:g} s to Switch.GetStatus (switch id {channel - 1}) "
            f"on {query[0]}"
        )
    else:
        payload = f"payload {query[1]}" if query[1] else "empty payload"
        asked = f"no answer within {wait_s:g} s to the state query on {query[0]} ({payload})"
    device = cfg.device
    if cfg.preset == "tasmota":
        power = states[0].rsplit("/", 1)[-1]
        return (
            f"{asked}; a Tasmota whose Topic is {device!r} answers on stat/{device}/RESULT "
            f"and stat/{device}/{power}. Check in its console: `Topic` is exactly "
            f"{device!r} (case matters), `FullTopic` is the default %prefix%/%topic%/, "
            "`Prefix1` cmnd and `Prefix2` stat, MQTT is enabled (Configure Other, or "
            "`SetOption3 1`) with `MqttHost`/`MqttPort`/`MqttUser` of this broker"
            + (
                ", and `SetOption26 0` (one relay is POWER, not POWER1)"
                if cfg.channels == 1
                else f", and the device has a relay {power}"
            )
        )
    if cfg.preset == "shelly_gen2":
        return (
            f"{asked}; the reply would come on {states[-1]}. Check the Shelly's web page, "
            "Settings > MQTT: MQTT enabled and connected to this broker, the MQTT prefix "
            f"(topic_prefix) exactly {device!r} (the default is the device id, e.g. "
            "shellyplus1-a8032ab12345), 'RPC over MQTT' on (enable_rpc), and 'RPC status "
            f"notifications over MQTT' on (rpc_ntf: how it reports changes); switch id "
            f"{channel - 1} must exist"
        )
    if cfg.preset == "zigbee2mqtt":
        ep = cfg.endpoints.get(channel, "")
        return (
            f"{asked}; the state would come on {states[0]} (key state{ep}). Check that "
            f"Zigbee2MQTT is running and connected to this broker, that the device's "
            f"friendly name is exactly {device!r} (case matters), that Zigbee2MQTT's "
            "mqtt.base_topic is zigbee2mqtt (the topic stove-ctl uses), and that the "
            "device is paired and reachable (its 'last seen' in Zigbee2MQTT)"
            + (f"; state{ep} must be one of its endpoints" if ep else "")
        )
    if cfg.preset == "esphome":
        name = states[0].split("/")[-2]
        return (
            f"{asked} (ESPHome cannot be asked: it publishes its state, retained, when it "
            "connects and on every change). Check the node's YAML: an `mqtt:` section for "
            f"this broker (the native API alone is not enough), its `topic_prefix` "
            f"{device!r} (the default is the node's name), and a switch whose object id "
            f"is {name!r} (by default the switch's name in lower case, spaces as _; this "
            "relay's names: in the config can say another)"
        )
    return (
        f"{asked}; the generic preset cannot ask the device: it must publish its state "
        f"on {states[0]} (retained, or soon), as {cfg.state_on!r} or {cfg.state_off!r}"
        + (f" at {cfg.state_json_path}" if cfg.state_json_path else "")
    )


async def _ask_channel(
    cfg: MqttRelayConfig, relay: MqttRelay, channel: int, wait_s: float
) -> tuple[bool, str]:
    label = f"channel {channel}"
    try:
        on = await relay.ask(channel)
    except RelayUnreachable:
        _, _, availability = relay.topics(channel)
        if relay.available is False:
            return False, (
                f"{label}: the device reports itself offline ({availability} holds its "
                "last will): it was connected to this broker and lost the connection. "
                "Is it powered and on the network?"
            )
        if not relay.link.connected:
            return False, f"{label}: not asked: the connection to the broker was lost"
        return False, f"{label}: {no_answer_help(cfg, relay, channel, wait_s)}"
    except RelayError as exc:
        return False, f"{label}: {exc}"
    word = "on" if on else "off"
    if relay.preset.query is None:
        return True, f"{label}: reads {word} (its last published state: it cannot be asked)"
    return True, f"{label}: answered the state query, reads {word}"


async def check_mqtt_relays(config: Config, broker_ok: bool) -> list[Finding]:
    """Ask every MQTT relay (each channel a burner uses) for its state, all at once,
    the way the driver does, and explain every silence. Nothing is ever switched."""
    wanted = {n: c for n, c in config.relays.items() if isinstance(c, MqttRelayConfig)}
    if not wanted:
        return []
    findings = {
        n: Finding(n, ok=True, lines=[f"mqtt {c.preset} {c.device!r}: {READ_ONLY}"])
        for n, c in wanted.items()
    }
    assert config.mqtt is not None  # checked by the config
    if not broker_ok:
        for finding in findings.values():
            finding.ok = False
            finding.lines.append("not asked: the broker could not be used (above)")
        return list(findings.values())
    link = BrokerLink(link_settings(config.mqtt, f"{config.mqtt.client_id}-doctor", None))
    waits = {n: max(ASK_S, c.timeout_s) for n, c in wanted.items()}
    relays = {
        n: build_mqtt_relay(n, c.model_copy(update={"timeout_s": waits[n]}), link)
        for n, c in wanted.items()
    }
    # Subscribed after the relays: when our own message comes back, the broker has
    # delivered every retained message of the relays' topics before it.
    barrier = asyncio.Event()
    barrier_topic = f"{config.mqtt.client_id}-doctor/barrier"
    link.subscribe(barrier_topic, lambda message: barrier.set())
    link.start(asyncio.get_running_loop())
    try:
        if not await link.wait_connected(5):
            for finding in findings.values():
                finding.ok = False
                finding.lines.append("not asked: no connection to the broker within 5 s")
            return list(findings.values())
        link.publish(barrier_topic, "", qos=1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(barrier.wait(), 2)
        jobs = [
            (name, _ask_channel(wanted[name], relays[name], channel, waits[name]))
            for name in wanted
            for channel in burner_channels(config, name, wanted[name].channels)
        ]
        answers = await asyncio.gather(*(job for _, job in jobs))
        for (name, _), (ok, line) in zip(jobs, answers, strict=True):
            findings[name].ok = findings[name].ok and ok
            findings[name].lines.append(line)
        return list(findings.values())
    finally:
        await link.stop()


async def run_doctor(config: Config) -> list[Finding]:
    checks = [
        check_miio(name, cfg)
        for name, cfg in config.relays.items()
        if isinstance(cfg, MiioRelayConfig)
    ]
    findings = list(await asyncio.gather(*checks))
    broker: Finding | None = None
    if config.mqtt is not None:
        broker = await asyncio.to_thread(check_broker, config.mqtt)
        findings.insert(0, broker)
    for name, cfg in config.relays.items():
        if isinstance(cfg, SimulatedRelayConfig):
            findings.append(Finding(name, True, ["simulated: in-process, nothing to reach"]))
    findings += await check_mqtt_relays(config, broker is not None and broker.ok)
    return findings
