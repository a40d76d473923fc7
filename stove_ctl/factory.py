"""The one place that turns a config into running objects."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import hardware
from stove_ctl.clock import Clock
from stove_ctl.config import Config, MiioRelayConfig, SimulatedRelayConfig
from stove_ctl.controller import BurnerSpec, Controller
from stove_ctl.drivers.miio import MiioChannelMap, MiioProtocol, MiioRelay, MiotProperty
from stove_ctl.drivers.simulated import SimulatedFlame, SimulatedRelay
from stove_ctl.events import EventLog
from stove_ctl.relay import FlameInput, Relay
from stove_ctl.state import StateStore

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    controller: Controller
    events: EventLog
    relays: dict[str, Relay]
    # The simulated kitchen, where the config uses the simulated driver.
    sim_boards: dict[str, hardware.SimRelay] = field(default_factory=dict)
    sim_stoves: dict[str, hardware.Stove] = field(default_factory=dict)

    async def close(self) -> None:
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


def build(config: Config, clock: Clock) -> Runtime:
    state_dir = config.state_dir
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # Shutoffs must work without a state store (invariant 8); say so and go on.
        log.error("cannot create state_dir %s: %s", state_dir, exc)
    events = EventLog(state_dir / "events.db")
    store = StateStore(state_dir / "state.json")

    relays: dict[str, Relay] = {}
    boards: dict[str, hardware.SimRelay] = {}
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

    stoves: dict[str, hardware.Stove] = {}
    specs: list[BurnerSpec] = []
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
                boards[device].attach(burner_cfg.relay.channel, physical.contact)
                if relay_cfg.start_lit:
                    physical.light_and_hold()
                flame = SimulatedFlame(physical)
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
                )
            )
    controller = Controller(specs, events, store, clock, config.trust)
    return Runtime(controller, events, relays, boards, stoves)
