"""A fleet across bridged brokers (docs/FLEET.md), in real time: daemons of two sites
on a leaf Mosquitto bridged to a central one with the sample bridge configuration, a
third site on the same leaf that the bridge does not carry, and a fleet-wide shutoff
published on the central broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bridge import Bridged
from tests.daemon import Daemon, wait_for
from tests.mqtt_watch import Watcher

pytestmark = pytest.mark.hil

BRIDGED = ("site-a", "site-b")
LOCAL = "site-c"  # on the leaf, but outside the bridge's topic lines
BURNERS = ("left", "right")


def site_config(tmp_path: Path, site: str, port: int) -> Path:
    """One site's daemon: the stove ``kitchen`` (the same stove id at every site) of two
    burners on simulated relays, under the site's base topic ``stove_ctl/<site>``."""
    directory = tmp_path / site
    directory.mkdir()
    data: dict[str, Any] = {
        "state_dir": str(directory / "state"),
        "socket": str(directory / "ctl.sock"),
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "base_topic": f"stove_ctl/{site}",
            "instance_id": site,  # and so the client id stove-ctl-<site>
            "discovery": False,
        },
        "relays": {"board": {"driver": "simulated", "channels": 2, "start_lit": True}},
        "stoves": [
            {
                "id": "kitchen",
                "burners": [
                    {"id": b, "relay": {"device": "board", "channel": n}, "pulse_s": 1.0}
                    for n, b in enumerate(BURNERS, start=1)
                ],
            }
        ],
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def topic(site: str, leaf: str) -> str:
    return f"stove_ctl/{site}/kitchen/{leaf}"


def untouched(daemon: Daemon) -> None:
    """No shutoff ever: every burner ready, intact, lit; no cut in the event log."""
    for burner in daemon.request({"action": "status"})["burners"]:
        assert burner["last_shutoff"] is None, burner
        assert (burner["mode"], burner["circuit"], burner["flame"]) == ("ready", "intact", "lit")
    assert not any(daemon.relay_outputs().values())  # never switched, or back
    assert not [e for e in daemon.events() if e["kind"] in ("cut_commanded", "cut_confirmed")]


def ready(daemon: Daemon) -> bool:
    burners = daemon.request({"action": "status"}).get("burners", [])
    return bool(burners) and all(b["mode"] == "ready" and b["circuit"] == "intact" for b in burners)


def test_fleet_wide_shutoff_on_the_central_broker_reaches_daemons_on_a_bridged_leaf(
    tmp_path, cleanup
) -> None:
    """Attempt: two sites' daemons on a leaf broker bridged to a central broker (the
    docs/FLEET.md sample); a third site on the leaf is outside the bridge. On the
    central broker: a command to one site and one to the unbridged site, then a
    fleet-wide shutoff (one command per stove topic).
    Expected: the one-site command cuts only that site; the unbridged site hears
    nothing and shows nothing centrally; every fleet command is answered on the central
    broker once, ok, both burners cut; every daemon's status and retained state say so;
    each bridged stove's retained state and availability are on the central broker."""
    brokers = Bridged(tmp_path, BRIDGED).start()
    cleanup.append(brokers)
    central = Watcher(brokers.central.port, ["stove_ctl/#"])
    cleanup.append(_Closing(central))
    leaf = Watcher(brokers.leaf_port, [f"stove_ctl/{LOCAL}/#"])
    cleanup.append(_Closing(leaf))

    daemons: dict[str, Daemon] = {}
    for site in (*BRIDGED, LOCAL):
        daemon = Daemon(site_config(tmp_path, site, brokers.leaf_port))
        cleanup.append(daemon)
        daemons[site] = daemon.start()
    for site, daemon in daemons.items():
        daemon.wait_reconciled()
        watcher = leaf if site == LOCAL else central
        watcher.wait(topic(site, "availability"), lambda m: m.payload == b"online")
    leaf_log = brokers.leaf.log_path.read_text()  # type: ignore[union-attr]
    for site in daemons:  # one connection each, none taking another's turn
        assert f" as stove-ctl-{site} " in leaf_log

    # 1. One site's command, and one under a topic the bridge does not carry.
    central.publish(topic(LOCAL, "cmd"), {"id": "outside", "action": "shutoff"})
    central.publish(topic("site-a", "cmd"), {"id": "a-only", "action": "shutoff"})
    only_a = central.wait_json(topic("site-a", "result"), lambda r: r["id"] == "a-only")
    assert only_a["ok"] and all(b["cut_at"] for b in only_a["burners"]), only_a
    # Barriers: a status query behind them on the same path. Had site-b's daemon
    # heard site-a's command, or the bridge carried site-c's, it came before these.
    central.publish(topic("site-b", "cmd"), {"id": "b-barrier", "action": "status"})
    central.wait_json(topic("site-b", "result"), lambda r: r["id"] == "b-barrier")
    leaf.publish(topic(LOCAL, "cmd"), {"id": "c-barrier", "action": "status"})
    leaf.wait_json(topic(LOCAL, "result"), lambda r: r["id"] == "c-barrier")
    untouched(daemons["site-b"])
    untouched(daemons[LOCAL])
    assert [r["id"] for r in leaf.json(topic(LOCAL, "result"))] == ["c-barrier"]
    # Nothing of site-c crossed to the central broker: only the command sent there.
    assert [m.topic for m in central.on(f"stove_ctl/{LOCAL}/#")] == [topic(LOCAL, "cmd")]
    assert [e["command_id"] for e in daemons["site-a"].events() if e["kind"] == "command"] == [
        "a-only"
    ]

    # 2. The fleet-wide shutoff: one command per stove topic, on the central broker.
    wait_for(lambda: ready(daemons["site-a"]), 10, daemons["site-a"].log)
    for site in BRIDGED:
        central.publish(topic(site, "cmd"), {"id": f"fleet-{site}", "action": "shutoff"})
    for site in BRIDGED:
        result = central.wait_json(topic(site, "result"), lambda r, s=site: r["id"] == f"fleet-{s}")
        assert result["ok"] is True and result["action"] == "shutoff", result
        assert sorted(b["burner"] for b in result["burners"]) == [f"kitchen/{b}" for b in BURNERS]
        assert all(b["cut_at"] is not None for b in result["burners"]), result
        status = daemons[site].request({"action": "status"})
        for burner in status["burners"]:
            shutoff = burner["last_shutoff"]
            assert shutoff["command_id"] == f"fleet-{site}", burner
            assert shutoff["source"] == "mqtt" and shutoff["cut_at"] is not None, burner
            assert shutoff["outcome"] in ("cutting", "restored"), burner
        confirmed = [
            e["burner"]
            for e in daemons[site].events()
            if e["kind"] == "cut_confirmed" and e["command_id"] == f"fleet-{site}"
        ]
        assert sorted(confirmed) == [f"kitchen/{b}" for b in BURNERS]
        # The retained state on the central broker carries the shutoff too.
        central.wait_json(
            topic(site, "state"),
            lambda s, s_=site: all(
                (s["burners"][b]["last_shutoff"] or {}).get("command_id") == f"fleet-{s_}"
                and s["burners"][b]["last_shutoff"]["cut_at"] is not None
                for b in BURNERS
            ),
        )
    untouched(daemons[LOCAL])

    # Each command and each answer crossed once (no bridge loop): barriers first.
    for site in BRIDGED:
        central.publish(topic(site, "cmd"), {"id": f"{site}-end", "action": "status"})
        central.wait_json(topic(site, "result"), lambda r, s=site: r["id"] == f"{s}-end")
        ids = [r["id"] for leaf_ in ("cmd", "result") for r in central.json(topic(site, leaf_))]
        assert ids.count(f"fleet-{site}") == 2, ids  # the command (sent here) and its result

    # 3. A newcomer on the central broker (a dashboard) finds every bridged stove from
    # the retained messages, and nothing of the unbridged site.
    dashboard = Watcher(brokers.central.port, ["stove_ctl/+/+/availability", "stove_ctl/+/+/state"])
    cleanup.append(_Closing(dashboard))
    for site in BRIDGED:
        available = dashboard.wait(topic(site, "availability"))
        assert available.retain and available.payload == b"online"
        state = dashboard.wait(topic(site, "state"))
        assert state.retain and set(json.loads(state.payload)["burners"]) == set(BURNERS)
    # Retained messages come as one batch on subscribing: site-c's would be here by now.
    assert sorted({m.topic for m in dashboard.messages}) == sorted(
        topic(site, leaf_) for site in BRIDGED for leaf_ in ("availability", "state")
    )
    # On the leaf itself, site-c is there all along.
    assert leaf.wait(topic(LOCAL, "availability")).payload == b"online"

    # 4. The link breaks (the leaf dies; a clean stop would first send the daemons'
    # last wills over): the bridge's state on the central broker turns 0 (its last
    # will), and the retained availability there still says online: what a dashboard
    # must show side by side (docs/FLEET.md).
    link = Watcher(brokers.central.port, [brokers.state_topic()])
    cleanup.append(_Closing(link))
    link.wait(brokers.state_topic(), lambda m: m.payload == b"1")
    assert brokers.leaf is not None and brokers.leaf.proc is not None
    brokers.leaf.proc.kill()
    brokers.leaf.proc.wait(timeout=10)
    link.wait(brokers.state_topic(), lambda m: m.payload == b"0")
    after = Watcher(brokers.central.port, ["stove_ctl/+/+/availability"])
    cleanup.append(_Closing(after))
    for site in BRIDGED:
        assert after.wait(topic(site, "availability")).payload == b"online"


class _Closing:
    """A watcher in the cleanup list (which calls stop())."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def stop(self) -> None:
        self.watcher.close()
