"""The package's shape, checked on every run: layers import downward only, no module
needs more than 600 lines, and no code of ours touches a dependency's private state.

Layers, lowest first (a module may import its own layer and the ones below):
  0. ``errors``, ``clock``, ``retry``: used by everything
  1. ``drivers``: relay protocols and the broker connection
  2. ``config``: the config file's models and its one reader
  3. ``core``: burners, controller, commands, timers, rules, state, events
  4. ``surfaces``: control socket, MQTT API, text commands
  5. ``cli``, ``daemon``, ``factory``, ``doctor``, ``instance``, ``commission``: the program
     and its wiring
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "stove_ctl"
MAX_LINES = 600
LAYERS = {
    "errors": 0,
    "clock": 0,
    "retry": 0,
    "drivers": 1,
    "config": 2,
    "core": 3,
    "surfaces": 4,
    "cli": 5,
    "daemon": 5,
    "factory": 5,
    "doctor": 5,
    "instance": 5,
    "commission": 5,
    "__main__": 5,
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int | None:
    """The layer of a ``stove_ctl`` module; None for the package itself (its version)."""
    parts = module.split(".")
    if parts[0] != "stove_ctl" or len(parts) == 1:
        return None
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module}: not in any layer (add it to LAYERS in this test)")
    return LAYERS[parts[1]]


def _imports(tree: ast.Module, module: str) -> list[tuple[int, str]]:
    """Every module imported, anywhere in the file (functions included), as a full name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level or None]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def _own(name: str) -> bool:
    return name == "stove_ctl" or name.startswith("stove_ctl.")


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_layers_import_downward_only(path: Path) -> None:
    module = _name(path)
    mine = _layer(module)
    tree = ast.parse(path.read_text())
    upward = []
    for line, target in _imports(tree, module):
        if not _own(target):
            continue
        try:
            theirs = _layer(target)
        except AssertionError:
            continue  # ``from stove_ctl.x import name``: the module itself is checked
        if mine is not None and theirs is not None and theirs > mine:
            upward.append(f"line {line}: {target} (layer {theirs}) from layer {mine}")
    assert upward == []


def test_the_simulated_kitchen_is_used_only_by_its_driver_and_the_factory() -> None:
    users = set()
    for path in _modules():
        for _, target in _imports(ast.parse(path.read_text()), _name(path)):
            if target == "hardware" or target.startswith("hardware."):
                users.add(_name(path))
    assert users == {"stove_ctl.drivers.simulated", "stove_ctl.factory"}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_needs_more_than_600_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(source: str) -> list[str]:
    """Uses of another object's private names: ``x._y`` for any ``x`` but ``self`` and
    ``cls``, ``getattr(x, "_y")`` and friends, and ``from lib import _y`` or a private
    module of a library. Our own objects are held to the same rule."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1:
                name = node.args[1]
                text = name.value if isinstance(name, ast.Constant) else None
                if isinstance(text, str) and _private(text):
                    found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and not node.level:
            module = node.module or ""
            names = [a.name for a in node.names]
            if not _own(module) and (
                any(_private(p) for p in module.split(".")) or any(_private(n) for n in names)
            ):
                found.append(f"line {node.lineno}: from {module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(_private(p) for p in alias.name.split(".")):
                    found.append(f"line {node.lineno}: import {alias.name}")
    return found


@pytest.mark.parametrize(
    "path",
    _modules() + sorted((ROOT / "hardware").rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_code_of_ours_touches_private_state(path: Path) -> None:
    assert private_uses(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "queue = client._out_packet",
        "getattr(client, '_out_packet', None)",
        "job._scheduler = scheduler",
        "from paho.mqtt.client import _socketpair_compat",
        "import asyncio.base_events as b; from asyncio import _get_running_loop",
        "self.contact._hooks.append(f)",
    ],
)
def test_the_private_state_check_catches_each_form(source: str) -> None:
    assert private_uses(source) != []


def test_the_private_state_check_lets_self_and_dunders_be() -> None:
    assert private_uses("self._x = 1\ncls._y\nobj.__class__\nfrom stove_ctl.x import _z") == []
