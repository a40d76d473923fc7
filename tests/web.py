"""The kitchen page's tests: a simulated kitchen with a ``web:`` section, and plain
HTTP requests with full control over their headers (Origin, Host, cookies)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import yaml

from tests.broker import free_port
from tests.daemon import kitchen_config

TOKEN = "kitchen-page-token-for-tests"


def web_config(
    tmp_path: Path,
    pulse_s: float = 1.0,
    port: int | None = None,
    token: bool = True,
    unlock_web: bool = True,
) -> tuple[Path, int]:
    """The two-burner kitchen with the page on a free loopback port (and its port)."""
    path = kitchen_config(tmp_path, pulse_s=pulse_s)
    data = yaml.safe_load(path.read_text())
    port = port or free_port()
    data["web"] = {"host": "127.0.0.1", "port": port}
    if token:
        token_file = tmp_path / "web.token"
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(0o600)
        data["web"]["token_file"] = str(token_file)
    if unlock_web:
        data["trust"] = {"unlock_sources": ["cli", "web"]}
    path.write_text(yaml.safe_dump(data))
    return path, port


def call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout_s: float = 30.0,
) -> tuple[int, dict[str, Any]]:
    """One request to the page; the status and the JSON reply."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        sent = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        text = response.read()
        return response.status, json.loads(text) if text else {}
    finally:
        conn.close()


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
