"""Broker security: password auth and TLS (CA, client certificate); secrets stay secret."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.broker import Mosquitto
from tests.certs import issue, make_ca
from tests.daemon import Daemon, kitchen_config, wait_for

pytestmark = pytest.mark.hil

BASE = "stove_ctl/kitchen"
PASSWORD = "s3cret-Pa55-w0rd"


def password_broker(tmp_path: Path) -> Mosquitto:
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "stove", PASSWORD], check=True)
    return Mosquitto(tmp_path, password_file=passwords).start()


def online_via(daemon: Daemon) -> bool:
    return "connected to broker" in daemon.log()


def test_password_auth_works_and_the_password_is_never_logged(tmp_path, cleanup) -> None:
    broker = password_broker(tmp_path)
    cleanup.append(broker)
    (tmp_path / "mqtt.pw").write_text(PASSWORD + "\n")
    config = kitchen_config(
        tmp_path,
        mqtt={
            "host": "127.0.0.1",
            "port": broker.port,
            "username": "stove",
            "password_file": "mqtt.pw",
        },
    )
    daemon = Daemon(config)
    doctor = daemon.cli("doctor")
    assert doctor.returncode == 0 and "connected (MQTT accepted)" in doctor.stdout, doctor.stdout
    daemon.start()
    cleanup.append(daemon)
    wait_for(lambda: online_via(daemon), 10, daemon.log)
    assert daemon.cli("off", "left").returncode == 0
    everything = (
        daemon.log() + daemon.cli("status", "--json").stdout + daemon.cli("events", "--json").stdout
    )
    assert PASSWORD not in everything and PASSWORD not in doctor.stdout


def test_wrong_password_is_explained_and_cutting_still_works(tmp_path, cleanup) -> None:
    broker = password_broker(tmp_path)
    cleanup.append(broker)
    config = kitchen_config(
        tmp_path,
        mqtt={
            "host": "127.0.0.1",
            "port": broker.port,
            "username": "stove",
            "password": "nope-wrong",
        },
    )
    daemon = Daemon(config)
    doctor = daemon.cli("doctor")
    assert doctor.returncode == 1
    assert "the broker refused us" in doctor.stdout and "nope-wrong" not in doctor.stdout
    daemon.start()
    cleanup.append(daemon)
    assert daemon.cli("off", "left").returncode == 0  # the safety path never waits for a broker
    assert daemon.status("left")["flame"] == "out"
    assert "nope-wrong" not in daemon.log()
    assert "refused the connection" in daemon.log()


def test_tls_with_ca_and_client_certificate(tmp_path, cleanup) -> None:
    ca = make_ca(tmp_path)
    server = issue(tmp_path, ca, "server", server=True)
    client = issue(tmp_path, ca, "client", server=False)
    broker = Mosquitto(tmp_path, tls=(ca[0], *server), require_certificate=True).start()
    cleanup.append(broker)
    good = kitchen_config(
        tmp_path,
        mqtt={
            "host": "127.0.0.1",
            "port": broker.port,
            "tls": {"ca_file": str(ca[0]), "cert_file": str(client[0]), "key_file": str(client[1])},
        },
    )
    daemon = Daemon(good)
    doctor = daemon.cli("doctor")
    assert doctor.returncode == 0 and "connected (TLS, MQTT accepted)" in doctor.stdout, (
        doctor.stdout
    )
    daemon.start()
    cleanup.append(daemon)
    wait_for(lambda: online_via(daemon), 10, daemon.log)


def test_tls_with_the_wrong_ca_is_refused(tmp_path, cleanup) -> None:
    ca = make_ca(tmp_path)
    other_ca = make_ca(tmp_path, "other")
    server = issue(tmp_path, ca, "server", server=True)
    broker = Mosquitto(tmp_path, tls=(ca[0], *server)).start()
    cleanup.append(broker)
    config = kitchen_config(
        tmp_path,
        mqtt={"host": "127.0.0.1", "port": broker.port, "tls": {"ca_file": str(other_ca[0])}},
    )
    daemon = Daemon(config)
    doctor = daemon.cli("doctor")
    assert doctor.returncode == 1
    assert "TLS: the broker's certificate does not verify" in doctor.stdout, doctor.stdout
    daemon.start()
    cleanup.append(daemon)
    assert daemon.cli("off", "left").returncode == 0
    assert "connected to broker" not in daemon.log()
