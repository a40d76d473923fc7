"""Home Assistant for scripts/ha-check: install it in its own venv, run it headless on
loopback, onboard it, add the MQTT integration and talk to its websocket API.

What a headless, offline Home Assistant needs (found with 2024.3.3 and 2025.4.4):

- Its requirements installed beforehand, pinned by the release's own
  ``package_constraints.txt``: the core, and those of the integrations it always sets
  up (``bootstrap.DEFAULT_INTEGRATIONS``: frontend, backup, person, ...) plus ``mqtt``,
  with their dependencies. It then runs with ``--skip-pip`` and installs nothing.
- No ``default_config:`` (it pulls cloud, zeroconf, ssdp, dhcp, bluetooth, ...); the
  location, time zone and units in ``configuration.yaml``, so it does not look them up
  on the network.
- Onboarding through the REST API stops after the ``user`` step: the ``core_config``
  step sets up met, radio_browser, google_translate and shopping_list, which go to the
  network. The API and the websocket work without the other steps.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

# Home Assistant release -> the Python it runs on here.
PYTHONS = {"2024.3.3": "3.11.7", "2025.4.4": "3.13.0"}
# `--ha current`: the newest release a Python on this machine can run. 2025.5 and later
# need Python 3.13.2; pyenv here has 3.13.0 (pip on 3.13.0 offers 2025.4.4 at most).
CURRENT = "2025.4.4"
# Packages a release does not pin and whose later versions break it.
FIXES = {
    # acme 2.8 (hass-nabucasa's) uses josepy.ComparableX509, gone in josepy 2: every
    # HTTP request fails in the forwarded middleware (500) with josepy 2.x.
    "2024.3.3": ["josepy==1.14.0"],
}
# Integrations this check sets up beyond Home Assistant's defaults.
CONFIGURED = ["http", "logger", "mqtt", "api", "auth", "config", "onboarding", "websocket_api"]
# Imported without being declared: camera (an MQTT platform) imports stream (numpy, av).
IMPORTED = ["stream"]
USER, PASSWORD = "ha-check", "ha-check-password"

# Run inside the Home Assistant venv: the requirements of every integration the check
# sets up (the defaults, the configured ones, and the entity platforms that the MQTT
# entry sets up: camera needs numpy through stream), with their dependencies and
# after_dependencies, as Home Assistant's own requirements step would install them.
_REQUIREMENTS = """
import json, pathlib, sys, homeassistant, homeassistant.bootstrap as b
components = pathlib.Path(homeassistant.__file__).parent / "components"
try:  # the entity platforms the MQTT entry sets up, all at once, as it loads
    from homeassistant.components.mqtt.const import PLATFORMS
except ImportError:
    from homeassistant.components.mqtt.const import ENTITY_PLATFORMS as PLATFORMS
todo = set(b.CORE_INTEGRATIONS) | set(b.DEFAULT_INTEGRATIONS) | set(sys.argv[1:])
todo = sorted(todo | {str(p.value if hasattr(p, "value") else p) for p in PLATFORMS})
seen = set()
while todo:
    domain = todo.pop()
    if domain not in seen:
        seen.add(domain)
        m = json.loads((components / domain / "manifest.json").read_text())
        todo += m.get("dependencies", []) + m.get("after_dependencies", [])
reqs = set()
for domain in seen:
    m = json.loads((components / domain / "manifest.json").read_text())
    reqs.update(m.get("requirements", []))
print(json.dumps(sorted(reqs)))
"""


def resolve(version: str) -> str:
    return CURRENT if version == "current" else version


def venv_path(venvs: Path, version: str) -> Path:
    return venvs / f"ha-venv-{version}"


def install(version: str, venvs: Path) -> Path:
    """The venv with Home Assistant ``version`` and everything it needs, installed if
    missing (minutes). Returns the venv."""
    venv = venv_path(venvs, version)
    marker = venv / "ha-check-installed.txt"  # pip freeze, written when complete
    log = venv / "ha-check-install.log"
    if marker.exists():
        return venv
    if version not in PYTHONS:
        raise SystemExit(f"ha-check: no Python known for Home Assistant {version}: {PYTHONS}")
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    python = pyenv / "versions" / PYTHONS[version] / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"ha-check: {python} is missing (Home Assistant {version} needs it)")
    print(f"== installing Home Assistant {version} into {venv} (minutes; log: {log})", flush=True)
    started = time.monotonic()
    venv.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:

        def run(*args: str | Path) -> str:
            done = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=out)
            if done.returncode != 0:
                raise SystemExit(f"ha-check: install step failed: {args} (see {log})")
            return done.stdout.decode()

        run(python, "-m", "venv", venv)
        pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
        # The release's own pins, from its wheel (the constraints pip cannot see).
        constraints = venv / "ha-constraints.txt"
        with tempfile.TemporaryDirectory() as tmp:
            run(*pip, "download", "--no-deps", "-d", tmp, f"homeassistant=={version}")
            wheel = next(Path(tmp).glob("homeassistant-*.whl"))
            with zipfile.ZipFile(wheel) as z:
                text = z.read("homeassistant/package_constraints.txt").decode()
        constraints.write_text(text + "".join(f"{fix}\n" for fix in FIXES.get(version, [])))
        pinned = ["-c", constraints]
        run(*pip, "install", f"homeassistant=={version}", *FIXES.get(version, []), *pinned)
        domains = CONFIGURED + IMPORTED
        wanted = json.loads(run(venv / "bin" / "python", "-c", _REQUIREMENTS, *domains))
        run(*pip, "install", *wanted, *pinned)
        marker.write_text(run(*pip, "freeze"))
    print(f"== installed in {time.monotonic() - started:.0f} s", flush=True)
    return venv


class HaError(Exception):
    """Home Assistant answered with an error."""


class HomeAssistant:
    """One Home Assistant process with a fresh config dir, on 127.0.0.1:``port``."""

    def __init__(self, venv: Path, config_dir: Path, port: int) -> None:
        self.venv = venv
        self.config_dir = config_dir
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.client_id = f"{self.base}/"
        self.token = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = config_dir / "home-assistant.log"
        self.earlier_logs: list[str] = []  # of earlier starts (each start rotates the log)

    def version(self) -> str:
        python = self.venv / "bin" / "python"
        code = "from homeassistant.const import __version__; print(__version__)"
        return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.strip()

    def write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(
            "homeassistant:\n"
            "  name: ha-check\n"
            "  latitude: 52.37\n  longitude: 4.89\n  elevation: 0\n"
            "  unit_system: metric\n  time_zone: UTC\n  currency: EUR\n  country: NL\n"
            f"http:\n  server_host: 127.0.0.1\n  server_port: {self.port}\n"
            "logger:\n  default: warning\n"
        )

    def start(self, timeout_s: float = 180) -> float:
        """Start it; returns the seconds until the API answered."""
        self.write_config()
        if self.log_path.exists():
            self.earlier_logs.append(self.log_path.read_text(errors="replace"))
        started = time.monotonic()
        out = open(self.config_dir.parent / "ha-stdout.log", "ab")  # noqa: SIM115 - the child's
        python = self.venv / "bin" / "python"
        self.proc = subprocess.Popen(
            [python, "-m", "homeassistant", "--skip-pip", "-c", str(self.config_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        while time.monotonic() - started < timeout_s:
            if self.proc.poll() is not None:
                raise HaError(f"Home Assistant exited with {self.proc.returncode}")
            try:
                if isinstance(self.rest("GET", "/api/onboarding"), list):
                    return time.monotonic() - started
            except (OSError, HaError):
                pass
            time.sleep(0.5)
        raise HaError(f"Home Assistant's API did not answer within {timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # -- REST ------------------------------------------------------------------------

    def rest(self, method: str, path: str, body: Any = None, form: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise HaError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None

    def onboard(self) -> None:
        """Create the owner (onboarding's user step) and log in with the code it gives."""
        code = self.rest(
            "POST",
            "/api/onboarding/users",
            {
                "client_id": self.client_id,
                "name": USER,
                "username": USER,
                "password": PASSWORD,
                "language": "en",
            },
        )["auth_code"]
        token = self.rest(
            "POST",
            "/auth/token",
            {"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
            form=True,
        )
        self.token = token["access_token"]  # 30 min: long enough to get a long-lived one

    def add_mqtt(self, broker_port: int) -> dict[str, Any]:
        """The MQTT integration through its config flow, as the UI does it."""
        flow = self.rest(
            "POST",
            "/api/config/config_entries/flow",
            {"handler": "mqtt", "show_advanced_options": False},
        )
        if flow.get("type") != "form" or flow.get("step_id") != "broker":
            raise HaError(f"the MQTT flow did not ask for the broker: {flow}")
        result = self.rest(
            "POST",
            f"/api/config/config_entries/flow/{flow['flow_id']}",
            {"broker": "127.0.0.1", "port": broker_port},
        )
        if result.get("type") != "create_entry":
            raise HaError(f"the MQTT flow did not create an entry: {result}")
        return dict(result)

    def socket(self) -> HaSocket:
        return HaSocket(f"ws://127.0.0.1:{self.port}/api/websocket", self.token)

    # -- the log ---------------------------------------------------------------------

    def log_records(self) -> list[str]:
        """home-assistant.log, of every start, as records: a line that starts with a
        time, and the lines (tracebacks) that follow it."""
        logs = [*self.earlier_logs]
        if self.log_path.exists():
            logs.append(self.log_path.read_text(errors="replace"))
        records: list[str] = []
        for line in "\n".join(logs).splitlines():
            if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line) or not records:
                records.append(line)
            else:
                records[-1] += "\n" + line
        return records


class HaSocket:
    """The websocket API, one request at a time (no subscriptions: every message that
    comes back answers the request just sent)."""

    def __init__(self, url: str, token: str) -> None:
        self.ws = connect(url, max_size=None, open_timeout=30)
        hello = json.loads(self.ws.recv(timeout=30))
        if hello.get("type") != "auth_required":
            raise HaError(f"websocket: {hello}")
        self.ws.send(json.dumps({"type": "auth", "access_token": token}))
        reply = json.loads(self.ws.recv(timeout=30))
        if reply.get("type") != "auth_ok":
            raise HaError(f"websocket auth: {reply}")
        self.ha_version = str(reply.get("ha_version"))
        self.next_id = 0

    def call(self, kind: str, timeout_s: float = 30, **fields: Any) -> Any:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "type": kind, **fields}))
        while True:
            reply = json.loads(self.ws.recv(timeout=timeout_s))
            if reply.get("id") == self.next_id and reply.get("type") == "result":
                if not reply.get("success"):
                    raise HaError(f"{kind}: {reply.get('error')}")
                return reply.get("result")

    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self.call("get_states")}

    def devices(self) -> list[dict[str, Any]]:
        return list(self.call("config/device_registry/list"))

    def entities(self) -> list[dict[str, Any]]:
        return list(self.call("config/entity_registry/list"))

    def service(self, domain: str, service: str, entity_id: str, **data: Any) -> None:
        self.call(
            "call_service",
            domain=domain,
            service=service,
            service_data=data,
            target={"entity_id": entity_id},
        )

    def long_lived_token(self) -> str:
        return str(self.call("auth/long_lived_access_token", client_name="ha-check", lifespan=30))

    def close(self) -> None:
        self.ws.close()
