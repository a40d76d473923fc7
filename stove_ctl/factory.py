"""The one place that turns a config into running objects."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import hardware
from stove_ctl.clock import Clock
from stove_ctl.config import Config, MiioRelayConfig, MqttRelayConfig, SimulatedRelayConfig
from stove_ctl.core.burner import BurnerSpec
from stove_ctl.core.controller import Controller
from stove_ctl.core.events import EventLog
from stove_ctl.core.rules import MqttFlame, MqttInputs, RuleEngine
from stove_ctl.core.selftest import SelfTest
from stove_ctl.core.state import StateStore
from stove_ctl.core.timers import TimerService
from stove_ctl.drivers.broker import BrokerLink
from stove_ctl.drivers.miio import MiioChannelMap, MiioProtocol, MiioRelay, MiotProperty
from stove_ctl.drivers.mqtt import MqttRelay
from stove_ctl.drivers.mqtt_presets import PRESETS, Availability, Preset, StateSource
from stove_ctl.drivers.relay import FlameInput, Relay
from stove_ctl.drivers.simulated import SimulatedFlame, SimulatedRelay
from stove_ctl.surfaces.mqtt_api import link_settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    controller: Controller
    events: EventLog
    relays: dict[str, Relay]
    # The simulated kitchen, where the config uses the simulated driver.
    sim_boards: dict[str, hardware.SimRelay] = field(default_factory=dict)
    sim_stoves: dict[str, hardware.Stove] = field(default_factory=dict)
    relay_link: BrokerLink | None = None
    timers: TimerService | None = None
    rules: RuleEngine | None = None
    inputs: MqttInputs | None = None
    self_test: SelfTest | None = None

    async def start(self, connect_wait_s: float = 5.0) -> None:
        """Connect the MQTT relays' broker link (in the background if it is away)."""
        if self.relay_link is not None:
            self.relay_link.start(asyncio.get_running_loop())
            await self.relay_link.wait_connected(connect_wait_s)

    async def close(self) -> None:
        if self.relay_link is not None:
            await self.relay_link.stop()
        for relay in self.relays.values():
            await relay.close()
        self.events.close()


def build_miio(relay_id: str, cfg: MiioRelayConfig) -> MiioRelay:
    assert cfg.token is not None  # resolved by load_config
    channels = {}
    for channel in range(1, cfg.channels + 1):
        mapped = cfg.channel_map(channel)
        off_delay = (
            MiotProperty(mapped.off_delay.siid, mapped.off_delay.piid)
            if mapped.off_delay is not None
            else None
        )
        channels[channel] = MiioChannelMap(
            MiotProperty(mapped.siid, mapped.piid),
            off_delay,
            mapped.off_delay.disarm if mapped.off_delay is not None else None,
        )
    protocol = MiioProtocol(
        str(cfg.host), bytes.fromhex(cfg.token.get_secret_value()), timeout_s=cfg.timeout_s
    )
    return MiioRelay(
        relay_id,
        protocol,
        channels,
        legacy=cfg.protocol == "legacy",
        poll_s=cfg.poll_s or None,
    )


def generic_preset(cfg: MqttRelayConfig) -> Preset:
    assert cfg.command_topic is not None and cfg.state_topic is not None
    availability = (
        Availability(cfg.availability_topic, (cfg.payload_available,), (cfg.payload_not_available,))
        if cfg.availability_topic
        else None
    )
    return Preset(
        name="generic",
        set_topic=cfg.command_topic,
        payload_on=cfg.payload_on,
        payload_off=cfg.payload_off,
        states=(StateSource(cfg.state_topic, cfg.state_json_path, cfg.state_on, cfg.state_off),),
        availability=availability,
    )


def build_mqtt_relay(relay_id: str, cfg: MqttRelayConfig, link: BrokerLink) -> MqttRelay:
    preset = generic_preset(cfg) if cfg.preset == "generic" else PRESETS[cfg.preset]
    variables: dict[int, dict[str, str]] = {}
    for channel in range(1, cfg.channels + 1):
        variables[channel] = {}
        if channel in cfg.endpoints:
            variables[channel]["ep"] = cfg.endpoints[channel]
        if channel in cfg.names:
            variables[channel]["name"] = cfg.names[channel]
    relay = MqttRelay(
        relay_id,
        link,
        preset,
        cfg.device,
        channels=cfg.channels,
        variables=variables,
        timeout_s=cfg.timeout_s,
        device_pulse=cfg.device_pulse,
        poll_s=cfg.poll_s or None,
    )
    relay.attach()
    return relay


def build(config: Config, clock: Clock) -> Runtime:
    state_dir = config.state_dir
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # Shutoffs must work without a state store (invariant 8); say so and go on.
        log.error("cannot create state_dir %s: %s", state_dir, exc)
    events = EventLog(state_dir / "events.db")
    store = StateStore(state_dir / "state.db")

    relays: dict[str, Relay] = {}
    boards: dict[str, hardware.SimRelay] = {}
    relay_link: BrokerLink | None = None
    inputs = config.inputs
    if config.mqtt is not None and (
        inputs.flame or inputs.motion or inputs.alarms or inputs.presence
    ):
        relay_link = BrokerLink(
            link_settings(config.mqtt, f"{config.mqtt.client_id}-devices", None)
        )
    for relay_id, relay_cfg in config.relays.items():
        if isinstance(relay_cfg, SimulatedRelayConfig):
            board = hardware.SimRelay(
                channels=relay_cfg.channels,
                power_on_state=relay_cfg.power_on_state == "on",
                state_file=state_dir / f"sim-relay-{relay_id}.json",
            )
            boards[relay_id] = board
            relays[relay_id] = SimulatedRelay(relay_id, board)
        elif isinstance(relay_cfg, MiioRelayConfig):
            relays[relay_id] = build_miio(relay_id, relay_cfg)
        elif isinstance(relay_cfg, MqttRelayConfig):
            assert config.mqtt is not None  # checked by the config
            if relay_link is None:
                client_id = f"{config.mqtt.client_id}-devices"
                relay_link = BrokerLink(link_settings(config.mqtt, client_id, None))
            relays[relay_id] = build_mqtt_relay(relay_id, relay_cfg, relay_link)

    stoves: dict[str, hardware.Stove] = {}
    specs: list[BurnerSpec] = []
    # Simulated boards: stove/burner -> (physical burner, channel), wired once all are known.
    wired: dict[str, dict[str, tuple[hardware.Burner, int]]] = {}
    for stove_cfg in config.stoves:
        for burner_cfg in stove_cfg.burners:
            device = burner_cfg.relay.device
            relay_cfg = config.relays[device]
            flame: FlameInput | None = None
            if isinstance(relay_cfg, SimulatedRelayConfig):
                stove = stoves.setdefault(stove_cfg.id, hardware.Stove(clock))
                physical = stove.add_burner(
                    burner_cfg.id,
                    hardware.Wiring(burner_cfg.wiring.value),
                    contact_resistance_ohm=relay_cfg.contact_resistance_ohm,
                )
                wired.setdefault(device, {})[f"{stove_cfg.id}/{burner_cfg.id}"] = (
                    physical,
                    burner_cfg.relay.channel,
                )
                flame = SimulatedFlame(physical)
            for sensor in config.inputs.flame:
                names = (burner_cfg.id, f"{stove_cfg.id}/{burner_cfg.id}")
                if sensor.burner in names and relay_link is not None:
                    mqtt_flame = MqttFlame(
                        clock,
                        sensor.lit_above_mv,
                        sensor.payload_lit,
                        sensor.payload_out,
                        sensor.stale_s,
                    )
                    relay_link.subscribe(sensor.topic, mqtt_flame.update)
                    flame = mqtt_flame
            specs.append(
                BurnerSpec(
                    stove=stove_cfg.id,
                    id=burner_cfg.id,
                    name=burner_cfg.name,
                    relay=relays[device],
                    channel=burner_cfg.relay.channel,
                    wiring=burner_cfg.wiring,
                    pulse_s=burner_cfg.pulse_s,
                    flame=flame,
                    aliases=tuple(burner_cfg.aliases),
                )
            )
    for device, on_board in wired.items():
        sim_cfg = config.relays[device]
        assert isinstance(sim_cfg, SimulatedRelayConfig)
        miswire = {
            key: sim_cfg.miswire[key.split("/")[1]]
            for key in on_board
            if key.split("/")[1] in sim_cfg.miswire
        }
        hardware.connect(boards[device], on_board, miswire)
        for physical, _ in on_board.values():
            if sim_cfg.start_lit:
                physical.light_and_hold()
    controller = Controller(
        specs,
        events,
        store,
        clock,
        config.trust,
        confirm_s=config.rules.confirm_s,
        zone=config.zone,
    )
    rules = RuleEngine(
        controller, events, clock, config.rules, watches_motion=bool(config.inputs.motion)
    )
    mqtt_inputs = MqttInputs(relay_link, config.inputs, rules) if relay_link is not None else None
    timers = TimerService(
        controller,
        events,
        state_dir / "timers.db",
        config.zone,
        clock,
        schedules=config.schedules,
        lock_windows=config.lock_windows,
    )
    self_test = SelfTest(controller, clock, config.self_test, state_dir, config.zone)
    return Runtime(
        controller,
        events,
        relays,
        boards,
        stoves,
        relay_link,
        timers,
        rules,
        mqtt_inputs,
        self_test,
    )
