"""The service story: the systemd unit, the Dockerfile and the compose demo.

- ``deploy/stove-ctl.service`` passes ``systemd-analyze verify`` with no warning at
  all (verify exits 0 on an unknown key or a bad value, so its output is what counts);
- the Dockerfile copies only files that exist and runs the project's console script;
- ``compose.yaml`` mounts only files that exist, and the config it mounts passes
  ``stove-ctl check-config`` and points at the compose file's own broker.

Nothing here runs docker or systemd: images cannot be pulled in CI, and a unit
cannot be started without systemd as PID 1.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "stove-ctl.service"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
SERVICE_DOC = ROOT / "docs" / "SERVICE.md"
EXEC_START = "/opt/stove-ctl/bin/stove-ctl run -c /etc/stove-ctl/config.yaml"
STATE_DIR = "/var/lib/stove-ctl"
SOCKET = "/run/stove-ctl/stove-ctl.sock"


# -- systemd ---------------------------------------------------------------------


def _unit(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> every value it is given, in order (keys may repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return values


def _verify(unit_text: str, tmp_path: Path) -> list[str]:
    """Run ``systemd-analyze verify`` on a copy of the unit whose ExecStart names an
    executable that exists here, and return what it printed."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    stand_in = tmp_path / "stove-ctl"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    folder = tmp_path / "units"
    folder.mkdir()
    unit = folder / "stove-ctl.service"  # verify judges the unit by its file name
    unit.write_text(unit_text.replace("/opt/stove-ctl/bin/stove-ctl", str(stand_in)))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SYSTEMD_LOG_COLOR": "0", "LANG": "C.UTF-8"},
    )
    lines = (done.stdout + done.stderr).splitlines()
    # Only what is said about our unit; another unit file on the machine may have
    # its own complaints ("/lib/systemd/system/x.service:3: ...").
    ours = [line for line in lines if not re.match(r"/\S+:\d+: ", line) or str(folder) in line]
    if done.returncode != 0 and not ours:
        ours = [f"systemd-analyze verify exited {done.returncode}", *lines]
    return ours


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert _verify(UNIT.read_text(), tmp_path) == []


def test_verify_would_catch_a_misspelt_key(tmp_path: Path) -> None:
    """The check above is worth something: a typo is reported (with exit code 0)."""
    text = UNIT.read_text().replace("ProtectHome=yes", "ProtectHomes=yes")
    problems = _verify(text, tmp_path)
    assert any("ProtectHomes" in line for line in problems), problems


def test_unit_runs_the_daemon_in_its_own_directories() -> None:
    unit = _unit(UNIT.read_text())
    assert unit["Service.ExecStart"] == [EXEC_START]
    assert unit["Service.ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["Service.Restart"] == ["on-failure"]
    assert unit["Service.User"] == ["stove-ctl"]
    assert unit["Service.StateDirectory"] == ["stove-ctl"]
    assert unit["Service.RuntimeDirectory"] == ["stove-ctl"]
    assert unit["Service.ProtectSystem"] == ["strict"]
    # The relays and the broker are on the LAN: the network stays.
    assert "Service.PrivateNetwork" not in unit
    families = unit["Service.RestrictAddressFamilies"][-1].split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    # The daemon takes both directories from the config only: the documented config
    # must name them.
    doc = SERVICE_DOC.read_text()
    assert f"state_dir: {STATE_DIR}" in doc
    assert f"socket: {SOCKET}" in doc


# -- Dockerfile ------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    out = []
    for line in joined:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _console_scripts() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts: dict[str, str] = project["project"]["scripts"]
    return scripts


def _dockerfile_cmd() -> list[str]:
    cmds = [rest for word, rest in _instructions(DOCKERFILE.read_text()) if word == "CMD"]
    assert len(cmds) == 1, cmds
    cmd: list[str] = json.loads(cmds[0])  # exec form: no shell between
    return cmd


def test_dockerfile_copies_files_that_exist() -> None:
    instructions = _instructions(DOCKERFILE.read_text())
    copies = [rest for word, rest in instructions if word in ("COPY", "ADD")]
    assert copies
    for rest in copies:
        words = shlex.split(rest)
        if any(w.startswith("--from=") for w in words):
            continue  # from an earlier stage, not the repository
        sources = [w for w in words if not w.startswith("--")][:-1]
        assert sources, rest
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile: COPY {source}: no such file"
    # pyproject.toml's packages and readme are all copied in before `pip install .`
    copied = {Path(s).parts[0] for rest in copies for s in shlex.split(rest)[:-1]}
    assert {"pyproject.toml", "README.md", "stove_ctl", "hardware"} <= copied
    assert any(
        word == "RUN" and "pip install" in rest and rest.rstrip().endswith(" .")
        for word, rest in instructions
    )


def test_dockerfile_runs_the_console_script_as_a_user() -> None:
    instructions = _instructions(DOCKERFILE.read_text())
    bases = [rest for word, rest in instructions if word == "FROM"]
    assert bases and all(b.startswith("python:3.11-slim") for b in bases), bases
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    cmd = _dockerfile_cmd()
    assert cmd[0] in _console_scripts(), cmd
    assert cmd[1] == "run" and cmd[2] == "-c", cmd


# -- compose ---------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source, for every volume of a service (short syntax)."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        out[target] = source
    return out


def test_compose_mounts_files_that_exist() -> None:
    compose = _compose()
    named = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for target, source in _mounts(service).items():
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: {source} (for {target}): no such file"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
        build = service.get("build")
        if build is not None:
            context = build if isinstance(build, str) else build.get("context", ".")
            assert (ROOT / context / "Dockerfile").is_file(), name


def test_compose_runs_the_simulated_kitchen_against_its_broker() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"mosquitto", "stove-ctl"}
    stove = services["stove-ctl"]
    command = stove.get("command") or _dockerfile_cmd()
    assert command[0] in _console_scripts(), command
    config_in_container = command[command.index("-c") + 1]
    mounts = _mounts(stove)
    assert config_in_container in mounts, f"nothing is mounted at {config_in_container}"
    config_file = ROOT / mounts[config_in_container]

    done = subprocess.run(
        [sys.executable, "-m", "stove_ctl", "check-config", "-c", str(config_file)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no secret left readable, nothing else to warn about

    config = yaml.safe_load(config_file.read_text())
    assert config["mqtt"]["host"] in services  # the broker by its service name
    assert {r["driver"] for r in config["relays"].values()} == {"simulated"}
    # state on the named volume, so it survives a new container
    assert config["state_dir"] in mounts and mounts[config["state_dir"]] in compose["volumes"]

    broker = services["mosquitto"]
    conf_target = "/mosquitto/config/mosquitto.conf"  # where the image reads it
    conf = (ROOT / _mounts(broker)[conf_target]).read_text()
    listeners = re.findall(r"^listener\s+(\d+)", conf, flags=re.MULTILINE)
    assert listeners == [str(config["mqtt"].get("port", 1883))]
