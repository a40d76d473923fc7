"""Property-based fuzzing (hypothesis) of the four ways input reaches stove-ctl.

1. MQTT JSON commands (``…/cmd``), through ``MqttApi._run``, the function that turns a
   raw payload into a command and its reply, over a real controller, timer service and
   rule engine on a simulated kitchen (no broker: nothing here needs one).
2. Text commands, zh and en: ``parse_text`` and the command model after it.
3. The config loader, ``load_config``, on generated YAML files.
4. miIO replies: the driver's packet decoder, and the whole request/reply exchange
   against a scripted device on real loopback UDP.

The contract (DESIGN invariant 8): bad input changes nothing, gets a clear error, and
never escapes as anything but our typed error.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import hashlib
import json
import math
import random
import re
import sqlite3
import struct
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import construct
import pytest
import yaml
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st
from miio.exceptions import PayloadDecodeException
from miio.protocol import Message, Utils

from stove_ctl.clock import ManualClock
from stove_ctl.config import (
    Config,
    MqttConfig,
    RulesConfig,
    StoveConfig,
    TrustConfig,
    load_config,
)
from stove_ctl.core.commands import ACTIONS, MAX_DELAY_S, Command, parse_command
from stove_ctl.core.events import Event
from stove_ctl.core.rules import RuleEngine
from stove_ctl.core.timers import TimerService
from stove_ctl.drivers.broker import Incoming
from stove_ctl.drivers.miio import HELLO, MiioChannelMap, MiioProtocol, MiioRelay, MiotProperty
from stove_ctl.errors import (
    CommandError,
    ConfigError,
    RelayAuthError,
    RelayBadReply,
    RelayError,
    RelayRejected,
)
from stove_ctl.surfaces.mqtt_api import MAX_PAYLOAD_BYTES, MqttApi
from stove_ctl.surfaces.text import ALL_WORDS, STOVE_WORDS, burner_vocabulary, parse_text
from tests.conftest import Kitchen, make_kitchen

ROOT = Path(__file__).resolve().parent.parent

# Any JSON value, small: what a sender can put where we expect something else.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
)
junk = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def has_words(message: str) -> bool:
    """Human-readable: says something in letters, not only a code or a number."""
    return bool(re.search(r"[^\W\d_]{2,}", message))


def assert_command_error(exc: CommandError) -> None:
    assert isinstance(exc.code, str) and re.fullmatch(r"[a-z_]+", exc.code), exc.code
    assert isinstance(exc.message, str) and has_words(exc.message), exc.message


# =====================================================================================
# 1. MQTT JSON commands
# =====================================================================================

STOVE = StoveConfig.model_validate(
    {
        "id": "kitchen",
        "burners": [
            {"id": "left", "relay": {"device": "board", "channel": 1}},
            {"id": "right", "relay": {"device": "board", "channel": 2}},
        ],
    }
)
NOW = ManualClock().time()  # every world's clock starts here
MAX_AGE = TrustConfig().max_command_age_s
# Names a sender may use for a burner of this stove ("kitchen" alone becomes
# "kitchen/kitchen" on the stove's own topic; None means every burner).
KNOWN_BURNERS = {"left", "right", "all", "kitchen/left", "kitchen/right"}
COMMAND_FIELDS = {
    "id",
    "action",
    "burner",
    "source",
    "ts",
    "retained",
    "in",
    "in_s",
    "at",
    "timer",
    "limit",
}
# What a refused command may leave behind: a record of it, nothing else.
REFUSAL_EVENTS = {"rejected", "command"}


def saved_rows(path: Path) -> list[tuple[Any, ...]] | None:
    """What the state store holds on disk, read as another program would."""
    if not path.exists():
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT * FROM burners ORDER BY key").fetchall()
    finally:
        db.close()


@dataclasses.dataclass
class World:
    """A daemon's command path on a simulated kitchen, with something to lose: a timer
    on the left burner (a wrongly accepted cancel would remove it), a lock on the right
    (a wrongly accepted unlock would restore it), and both burners lit and watched by
    the rules (a wrongly accepted snooze would move their deadline)."""

    kitchen: Kitchen
    timers: TimerService
    rules: RuleEngine
    api: MqttApi

    async def send(self, payload: bytes, retain: bool = False) -> dict[str, Any]:
        message = Incoming("stove_ctl/kitchen/cmd", payload, retain)
        reply = self.api._run(self.api.channels["kitchen"], message)
        return reply if isinstance(reply, dict) else await reply

    def events(self) -> list[Event]:
        return self.kitchen.events.query(10_000)

    def snapshot(self) -> dict[str, Any]:
        controller = self.kitchen.controller
        state_file = self.kitchen.state_dir / "state.db"
        return {
            "status": controller.status(),
            "burners": [
                (
                    b.spec.key,
                    b.mode,
                    b.relay_cut,
                    b.lock,
                    b.fault,
                    b.last_shutoff,
                    b.pulsing,
                    b.driving,
                    len(b.background),
                )
                for b in controller.burners()
            ],
            "relay outputs": [self.kitchen.board.get(channel) for channel in (1, 2)],
            "physics": [
                (name, b.valve_open, b.flame, b.circuit_intact)
                for name, b in self.kitchen.stove.burners.items()
            ],
            "timers": sorted(
                (job.id, str(job.next_run_time), repr(job.kwargs))
                for job in self.timers.scheduler.get_jobs()
            ),
            "rules": {key: dataclasses.asdict(w) for key, w in self.rules.watch.items()},
            "state file": saved_rows(state_file),
            "remembered ids": {sid: len(c.ids) for sid, c in self.api.channels.items()},
        }


async def make_world(state_dir: Path) -> World:
    kitchen = make_kitchen(state_dir, events_path=None)
    controller = kitchen.controller
    timers = TimerService(
        controller, kitchen.events, None, ZoneInfo("UTC"), kitchen.clock, name="fuzz"
    )
    rules = RuleEngine(
        controller, kitchen.events, kitchen.clock, RulesConfig(), watches_motion=False
    )
    timers.start()
    await rules.evaluate()  # both burners are lit: their lit period starts now
    timer = Command.model_validate({"action": "timer", "burner": "kitchen/left", "in": 600})
    assert (await controller.execute(timer, wait="confirmed"))["ok"]
    lock = Command(action="lock", burner="kitchen/right")
    assert (await controller.execute(lock, wait="confirmed"))["ok"]
    await kitchen.clock.settle()
    api = MqttApi(controller, kitchen.events, MqttConfig(host="127.0.0.1"), [STOVE], kitchen.clock)
    return World(kitchen, timers, rules, api)


@dataclasses.dataclass
class Exchange:
    reply: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]
    new_events: list[Event]


def exchange(payload: bytes, retain: bool = False) -> Exchange:
    """Send one payload to a fresh world; what came back and what it changed."""

    async def go() -> Exchange:
        with tempfile.TemporaryDirectory() as tmp:
            world = await make_world(Path(tmp))
            try:
                before, seen = world.snapshot(), len(world.events())
                reply = await world.send(payload, retain)
                await world.kitchen.clock.settle()  # let anything it started show itself
                return Exchange(reply, before, world.snapshot(), world.events()[seen:])
            finally:
                world.timers.stop()
                world.kitchen.events.close()

    return asyncio.run(go())


def assert_changed_nothing(ex: Exchange) -> None:
    changed = {k: (ex.before[k], ex.after[k]) for k in ex.before if ex.before[k] != ex.after[k]}
    assert not changed, f"a refused command changed: {changed}"
    kinds = {e.kind for e in ex.new_events}
    assert kinds <= REFUSAL_EVENTS, f"a refused command caused events {kinds - REFUSAL_EVENTS}"


def assert_refused(ex: Exchange) -> None:
    reply = ex.reply
    assert reply["ok"] is False, reply
    assert isinstance(reply.get("code"), str) and reply["code"], reply
    assert isinstance(reply.get("error"), str) and has_words(reply["error"]), reply
    assert_changed_nothing(ex)


def check_any_payload(payload: bytes, retain: bool = False) -> Exchange:
    """Whatever arrives: a JSON reply; refused and harmless, or a real command's result."""
    ex = exchange(payload, retain)
    reply = ex.reply
    assert isinstance(reply, dict)
    # Exactly what handle_command publishes: paho sends the str as UTF-8.
    json.dumps(reply, ensure_ascii=False).encode("utf-8")
    assert isinstance(reply.get("ok"), bool), reply
    if reply.get("code") is not None or not reply["ok"]:
        assert_refused(ex)
    else:
        assert is_utf8(payload) and len(payload) <= MAX_PAYLOAD_BYTES
        data = json.loads(payload)
        assert isinstance(data, dict) and reply["action"] == data["action"] in ACTIONS, reply
        assert isinstance(reply["id"], str) and reply["id"]
    return ex


# -- valid commands, each the base of the near-valid ones below -----------------------

BASES: dict[str, dict[str, Any]] = {
    "shutoff": {"id": "c1", "action": "shutoff", "burner": "left"},
    "lock": {"id": "c1", "action": "lock", "burner": "left"},
    "timer": {"id": "c1", "action": "timer", "burner": "right", "in": 900},
    "timers": {"id": "c1", "action": "timers", "burner": "left"},
    "status": {"id": "c1", "action": "status"},
    "cancel": {"id": "c1", "action": "cancel", "burner": "left", "ts": NOW},
    "extend": {"id": "c1", "action": "extend", "burner": "left", "in": 60, "ts": NOW},
    "snooze": {"id": "c1", "action": "snooze", "burner": "left", "in": 60, "ts": NOW},
}
RESTORE_BASES = ("cancel", "extend", "snooze")  # restore-direction: need a fresh ts
DELAY_BASES = ("timer", "extend", "snooze")


@pytest.mark.parametrize("name", sorted(BASES))
def test_the_unbroken_commands_are_accepted(name: str) -> None:
    """Each near-valid command below is one of these with exactly one thing broken; so
    it is that one thing that gets a near-valid command refused."""
    ex = exchange(json.dumps(BASES[name]).encode())
    assert ex.reply["ok"] is True and ex.reply["id"] == "c1", ex.reply
    assert ex.reply["action"] == name


# -- one defect each ----------------------------------------------------------------

KNOWN_UNITS = {"s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute"}
KNOWN_UNITS |= {"minutes", "h", "hr", "hrs", "hour", "hours"}
no_digits = st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=20)
not_a_string = junk.filter(lambda v: not isinstance(v, str))

bad_delays = st.one_of(
    st.integers(max_value=0),
    st.floats(max_value=0.0),  # includes -0.0 and -inf
    st.integers(min_value=int(MAX_DELAY_S) + 1),
    st.integers(min_value=2**1024, max_value=10**1200),  # too big for a float
    st.floats(min_value=MAX_DELAY_S, exclude_min=True),  # includes inf
    st.just(math.nan),
    st.booleans(),
    st.lists(json_scalars, max_size=2),
    st.dictionaries(st.text(max_size=4), json_scalars, max_size=2),
    no_digits,  # every duration has a number in it
    st.builds("-{}{}".format, st.integers(0, 10**6), st.sampled_from(["", "s", "m", "h"])),
    st.builds("{}{}".format, st.sampled_from(["0", "0.0", "00"]), st.sampled_from(["", "s", "m"])),
    st.builds("{}h".format, st.integers(25, 10**9)),
    st.builds("{}m".format, st.integers(24 * 60 + 1, 10**9)),
    st.builds(
        "{}{}".format,
        st.integers(1, 100),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=7).filter(
            lambda unit: unit not in KNOWN_UNITS
        ),
    ),
)
bad_ts = st.one_of(
    st.none(),
    st.sampled_from([math.nan, math.inf, -math.inf, "NaN", "nan", "inf", "-Infinity"]),
    st.floats(max_value=NOW - MAX_AGE - 1.0),  # stale
    st.floats(min_value=NOW + MAX_AGE + 1.0),  # from the future
    st.integers().filter(lambda ts: abs(ts - NOW) > MAX_AGE + 1),
    no_digits,
    st.booleans(),
    st.lists(json_scalars, max_size=2),
)
bad_times = st.one_of(
    no_digits,
    not_a_string,
    st.builds("{}:{:02d}".format, st.integers(24, 99), st.integers(0, 59)),
    st.builds("{:02d}:{}".format, st.integers(0, 23), st.integers(60, 99)),
    st.sampled_from(["2000-01-01T00:00:00", "2999-01-01T00:00:00", "1970-01-01", "18.30"]),
    st.text(min_size=41, max_size=60),
)
unknown_burners = st.one_of(
    st.text(max_size=80).filter(lambda name: name not in KNOWN_BURNERS),
    junk.filter(lambda v: v is not None and not isinstance(v, str)),
)


def encode(data: Any) -> bytes:
    """The payload a client sends for ``data``. Text drawn from an alphabet of the
    test's own (``st.characters(...)``) may hold lone surrogates (U+D800): they go on
    the wire as the invalid UTF-8 a real client could send (ED A0 80), not as an
    error in the test itself."""
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass")


def is_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def is_unicode(data: Any) -> bool:
    """No string in ``data`` holds half of a surrogate pair (JSON can escape one)."""
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escaped_surrogate(name: str, field: str, value: str) -> tuple[str, bytes, bool]:
    data = {**BASES[name], field: value}
    return f"escaped lone surrogate in {field} ({name})", json.dumps(data).encode(), False


def defect(
    kind: str,
    bases: tuple[str, ...],
    field: str | None,
    values: st.SearchStrategy[Any],
    drop: tuple[str, ...] = (),
) -> st.SearchStrategy[tuple[str, bytes, bool]]:
    """A base command with ``field`` set to a bad value (None: the field removed),
    without the fields in ``drop``."""

    def build(name: str, value: Any) -> tuple[str, bytes, bool]:
        data = {k: v for k, v in BASES[name].items() if k not in drop}
        if field is None:
            data.pop("ts")
        else:
            data[field] = value
        return f"{kind} ({name})", encode(data), False

    return st.builds(build, st.sampled_from(bases), values)


def _extra_key(name: str, key: str, value: Any) -> tuple[str, bytes, bool]:
    return f"unknown key {key!r} ({name})", encode({**BASES[name], key: value}), False


def _at_and_in(name: str, both: bool) -> tuple[str, bytes, bool]:
    data = {**BASES[name], "at": "23:59"}
    if not both:
        data.pop("in")
        data.pop("at")
    return ("both in and at" if both else "neither in nor at"), encode(data), False


def _not_an_object(name: str, wrap: Callable[[dict[str, Any]], Any]) -> tuple[str, bytes, bool]:
    return f"not a JSON object ({name})", encode(wrap(BASES[name])), False


def _oversize(name: str, pad: int, where: str) -> tuple[str, bytes, bool]:
    data = dict(BASES[name])
    if where == "id":
        data["id"] = "x" * pad
        payload = encode(data)
    else:
        payload = encode(data) + b" " * pad
    payload += b" " * max(0, MAX_PAYLOAD_BYTES + 1 - len(payload))
    return "larger than 4096 bytes", payload, False


ALL_BASES = tuple(BASES)
near_valid = st.one_of(
    defect(
        "unknown action",
        ALL_BASES,
        "action",
        st.text(max_size=20).filter(lambda a: a not in ACTIONS),
    ),
    defect("action not a string", ALL_BASES, "action", not_a_string),
    defect("unknown burner", ALL_BASES, "burner", unknown_burners),
    defect("bad delay", DELAY_BASES, "in", bad_delays),
    defect("bad ts", RESTORE_BASES, "ts", bad_ts),
    defect("no ts", RESTORE_BASES, None, st.none()),
    defect("bad at", ("timer",), "at", bad_times, drop=("in",)),
    defect(
        "unknown timer",
        ("cancel", "extend"),
        "timer",
        st.text(min_size=1, max_size=64).filter(lambda t: not t.startswith("t-")),
    ),
    defect(
        "timer id not a string",
        ("cancel", "extend"),
        "timer",
        not_a_string.filter(lambda v: v is not None),
    ),
    defect(
        "bad id",
        ALL_BASES,
        "id",
        st.one_of(not_a_string, st.just(""), st.text(min_size=65, max_size=100)),
    ),
    st.builds(
        _extra_key,
        st.sampled_from(ALL_BASES),
        st.text(max_size=12).filter(lambda k: k not in COMMAND_FIELDS),
        junk,
    ),
    st.builds(_at_and_in, st.just("timer"), st.booleans()),
    # Valid UTF-8 and valid JSON syntax, but "\ud800" names half of a surrogate pair:
    # one surrogate between surrogate-free text, so it cannot pair up.
    st.builds(
        _escaped_surrogate,
        st.sampled_from(ALL_BASES),
        st.sampled_from(["id", "action", "burner", "ts", "timer", "source"]),
        st.builds(
            "{}{}{}".format,
            st.text(max_size=3),
            st.characters(categories=["Cs"]),
            st.text(max_size=3),
        ),
    ),
    st.builds(
        lambda name: (f"retained ({name})", encode(BASES[name]), True),
        st.sampled_from(RESTORE_BASES),
    ),
    st.builds(
        lambda ts: (
            "unlock from mqtt (not an allowed source)",
            encode({"action": "unlock", "burner": "right", "ts": ts}),
            False,
        ),
        st.sampled_from([NOW, NOW - 1.0]),
    ),
    st.builds(
        _not_an_object,
        st.sampled_from(ALL_BASES),
        st.sampled_from([lambda d: [d], lambda d: json.dumps(d), lambda d: None, lambda d: 1]),
    ),
    st.builds(
        _oversize,
        st.sampled_from(ALL_BASES),
        st.integers(MAX_PAYLOAD_BYTES, 3 * MAX_PAYLOAD_BYTES),
        st.sampled_from(["id", "whitespace"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(case=near_valid)
@example(
    case=(
        "NaN ts (cancel)",
        b'{"id": "c1", "action": "cancel", "burner": "left", "ts": NaN}',
        False,
    )
)
@example(
    case=(
        "NaN ts (snooze)",
        b'{"id": "c1", "action": "snooze", "burner": "left", "in": 60, "ts": NaN}',
        False,
    )
)
@example(
    case=(
        "huge delay",
        b'{"id": "c1", "action": "timer", "burner": "right", "in": 1' + b"0" * 400 + b"}",
        False,
    )
)
@example(
    case=(
        "huge delay",
        b'{"id": "c1", "action": "extend", "burner": "left", "ts": 1790000000, "in": -1'
        + b"0" * 400
        + b"}",
        False,
    )
)
# A lone surrogate in a string (no_digits draws them): invalid UTF-8 on the wire.
@example(case=("bad delay (timer)", encode({**BASES["timer"], "in": "\ud800"}), False))
@example(case=_escaped_surrogate("shutoff", "id", "\ud800"))  # the reply echoed it
def test_mqtt_near_valid_command_is_refused_and_changes_nothing(
    case: tuple[str, bytes, bool],
) -> None:
    what, payload, retain = case
    note(f"{what}: {payload[:300]!r} retain={retain}")
    ex = check_any_payload(payload, retain)
    assert_refused(ex)
    if len(payload) > MAX_PAYLOAD_BYTES:
        assert ex.reply["code"] == "too_large" and ex.reply["id"] is None
        return
    if not is_utf8(payload):  # not JSON at all (RFC 8259: JSON text is UTF-8)
        assert ex.reply["code"] == "bad_json" and ex.reply["id"] is None
        assert "UTF-8" in ex.reply["error"], ex.reply
        return
    data = json.loads(payload)
    if not is_unicode(data):  # refused whole: the id cannot be echoed either
        assert ex.reply["code"] == "bad_json" and ex.reply["id"] is None
        assert "surrogate" in ex.reply["error"], ex.reply
        return
    if isinstance(data, dict):  # the reply names the command it answers
        given_id = data.get("id")
        assert ex.reply["id"] == (given_id if isinstance(given_id, str) else None)


@settings(max_examples=80, deadline=None)
@given(payload=st.binary(max_size=MAX_PAYLOAD_BYTES + 200), retain=st.booleans())
@example(payload=b"", retain=False)
@example(payload=b"\xff\xfe{", retain=False)
@example(payload=b"\x00" * 8, retain=True)
@example(payload=b" " * (MAX_PAYLOAD_BYTES + 1), retain=False)
def test_mqtt_arbitrary_bytes(payload: bytes, retain: bool) -> None:
    ex = check_any_payload(payload, retain)
    assert ex.reply["ok"] is False  # no byte soup is a command


@settings(max_examples=100, deadline=None)
@given(value=junk, retain=st.booleans())
def test_mqtt_arbitrary_json(value: Any, retain: bool) -> None:
    check_any_payload(encode(value), retain)


command_shaped = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=70), junk),
        "action": st.one_of(st.sampled_from([*ACTIONS, "explode", "Shutoff", ""]), junk),
        "burner": st.one_of(st.sampled_from(sorted(KNOWN_BURNERS)), st.text(max_size=8), junk),
        "in": st.one_of(
            bad_delays, st.integers(1, 86400), st.sampled_from(["15m", "1h30m", "90 s"])
        ),
        "at": st.one_of(bad_times, st.sampled_from(["18:30", "00:00"])),
        "ts": st.one_of(bad_ts, st.just(NOW)),
        "timer": st.one_of(st.text(max_size=70), junk),
        "source": junk,
        "retained": junk,
        "in_s": junk,
        "extra": junk,
    },
)


@settings(max_examples=150, deadline=None)
@given(data=command_shaped, retain=st.booleans())
@example(data={"action": "timer", "burner": "left", "at": "\ud800"}, retain=False)
def test_mqtt_command_shaped_dicts(data: dict[str, Any], retain: bool) -> None:
    note(repr(data))
    ex = check_any_payload(encode(data), retain)
    if ex.reply["ok"]:
        # Accepted: then it was a command. A restore-direction one must have been fresh,
        # live (not retained) and from a source allowed to ask for it.
        action = data["action"]
        assert action not in ("unlock",)  # mqtt is not an unlock source by default
        if action in RESTORE_BASES:
            assert not retain
            assert isinstance(data.get("ts"), int | float) and abs(data["ts"] - NOW) <= MAX_AGE


@pytest.mark.parametrize(
    "payload",
    [b"[" * 2000 + b"]" * 2000, b'{"action": "shutoff", "id": ' + b"[" * 1500 + b"]" * 1500 + b"}"],
    ids=["nested list", "nested in a command"],
)
def test_mqtt_deeply_nested_json_gets_an_error_reply(payload: bytes) -> None:
    """Found by this file: past its nesting limit json.loads raises RecursionError, not
    ValueError, and such a command (well under 4096 bytes) got no reply at all."""
    assert len(payload) <= MAX_PAYLOAD_BYTES
    ex = check_any_payload(payload)
    assert ex.reply["code"] == "bad_json" and ex.reply["id"] is None


# =====================================================================================
# 2. Text commands
# =====================================================================================

VOCABULARIES = {
    "left and right": burner_vocabulary(
        [
            ("kitchen/left", "left", "Left burner", ["大火眼"]),
            ("kitchen/right", "right", "Right burner", []),
        ]
    ),
    "one burner, no side": burner_vocabulary([("hob/main", "main", None, [])]),
    "three with aliases": burner_vocabulary(
        [
            ("kitchen/left", "left", None, []),
            ("kitchen/right", "right", None, ["big"]),
            ("kitchen/back", "back", "Back burner", ["灶眼一"]),
        ]
    ),
}
FRAGMENTS = [
    # Chinese numbers and time words
    *"零〇一二两俩三四五六七八九十百",
    "个", "半", "小时", "钟头", "分钟", "分", "秒", "秒钟", "后", "以后", "之后", "点", "一刻",
    "三刻", "凌晨", "早上", "上午", "中午", "下午", "傍晚", "晚上", ":", "：", ".",
    # Chinese actions and places
    "关", "关掉", "关火", "关闭", "熄", "灭", "取消", "不用关", "别关", "定时", "锁", "锁住",
    "解锁", "解除锁", "延长", "推迟", "状态", "怎么样", "开着吗", "关了吗", "左", "右", "前",
    "后面", "中间", "左边", "右边", "左灶", "右灶", "灶", "火", "燃气灶", "煤气", "全部", "所有",
    "都", "两个", "的", "和", "把", "了", "大火眼", "灶眼一",
    # English
    "turn", "switch", "shut", "off", "the", "left", "right", "back", "middle", "front",
    "burner", "burners", "stove", "hob", "gas", "all", "both", "everything", "every burner",
    "in", "after", "at", "minutes", "minute", "min", "m", "hours", "hour", "h", "seconds",
    "s", "half", "an", "a", "hour and a half", "and", "pm", "am", "ten", "fifteen",
    "forty-five", "nan", "inf", "infinity", "cancel", "the timer", "never mind", "lock",
    "unlock", "extend", "postpone", "status", "is", "on", "kill", "stop", "big", "main",
    # punctuation and odd characters
    " ", ",", "，", "。", "!", "?", "\u3000", "\t", "\n", "'", "\u200b", "0x", "-", "+", "e",
]  # fmt: skip
fragment = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.integers(min_value=-5, max_value=10**25).map(str),
    st.floats(min_value=0, allow_nan=False).map(str),
    st.sampled_from("０１２３４５６７８９").map(str),  # full-width digits
    st.text(max_size=3),
)
fragment_soup = st.builds(
    lambda parts, sep: sep.join(parts),
    st.lists(fragment, max_size=14),
    st.sampled_from(["", " ", "，"]),
)


def zh_numeral(n: int) -> str:
    """0..999 in Chinese numerals, as written: 十五, 二十五, 一百零五, 一百一十."""
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    if n < 100:
        tens = "" if n < 20 else digits[n // 10]
        return f"{tens}十{digits[n % 10] if n % 10 else ''}"
    rest = n % 100
    if rest == 0:
        tail = ""
    elif rest < 10:
        tail = f"零{digits[rest]}"
    elif rest < 20:
        tail = f"一{zh_numeral(rest)}"
    else:
        tail = zh_numeral(rest)
    return f"{digits[n // 100]}百{tail}"


zh_numbers = st.one_of(
    st.integers(0, 999).map(zh_numeral),
    st.integers(0, 10**7).map(str),
    st.text(alphabet="零〇一二两俩三四五六七八九十百", min_size=1, max_size=6),
    st.floats(0, 1e6).map("{:.2f}".format),
)
zh_when = st.one_of(
    st.builds("{}分钟后".format, zh_numbers),
    st.builds("{}个小时后".format, zh_numbers),
    st.builds("{}个半小时后".format, zh_numbers),
    st.builds("{}小时{}分钟以后".format, zh_numbers, zh_numbers),
    st.builds("{}秒之后".format, zh_numbers),
    st.builds(
        "{}{}点{}".format,
        st.sampled_from(["", "下午", "晚上", "凌晨", "中午", "早上"]),
        zh_numbers,
        st.sampled_from(["", "半", "一刻", "三刻", "十分", "五十九分", "九十分"]),
    ),
    st.builds("{}:{:02d}".format, st.integers(0, 30), st.integers(0, 99)),
    st.sampled_from(["半小时后", ""]),
)
ZH_ACTIONS = ["关", "关掉", "关闭", "熄灭", "锁住", "锁定", "解锁", "取消", "延长", "别关",
              "状态怎么样", "关了吗", "定时"]  # fmt: skip
ZH_PLACES = ["左边的火", "右灶", "燃气灶", "火", "所有的火", "左边和右边", "中间的火",
             "后面的火", "大火眼", "灶眼一", "前灶", ""]  # fmt: skip
EN_ACTIONS = ["turn off", "switch off", "shut off", "kill", "lock", "unlock", "cancel",
              "extend", "status of", "is on", "turn", "the timer"]  # fmt: skip
EN_PLACES = ["the left burner", "the right burner", "the stove", "all burners", "both",
             "the middle burner", "the back burner", "big", "the main burner", ""]  # fmt: skip
zh_utterances = st.builds(
    lambda parts, sep: sep.join(parts),
    st.permutations(
        [
            zh_when,
            st.sampled_from(ZH_ACTIONS),
            st.sampled_from(ZH_PLACES),
        ]
    ).flatmap(lambda parts: st.tuples(*parts)),
    st.sampled_from(["", " ", "，"]),
)
en_numbers = st.one_of(
    st.integers(-10, 10**7).map(str),
    st.floats(0, 1e7).map("{:g}".format),
    st.sampled_from(["ten", "fifteen", "forty-five", "a", "an", "half an", "nan", "inf"]),
)
en_when = st.one_of(
    st.builds(
        "{} {} {}".format,
        st.sampled_from(["in", "after"]),
        en_numbers,
        st.sampled_from(["minutes", "min", "m", "hours", "h", "hrs", "seconds", "s", "days"]),
    ),
    st.builds(
        "at {}:{:02d} {}".format,
        st.integers(0, 30),
        st.integers(0, 99),
        st.sampled_from(["", "pm", "am"]),
    ),
    st.builds("at {} {}".format, st.integers(0, 30), st.sampled_from(["pm", "am"])),
    st.sampled_from(["in half an hour", "in an hour and a half", ""]),
)
en_utterances = st.builds(
    " ".join,
    st.permutations(
        [
            en_when,
            st.sampled_from(EN_ACTIONS),
            st.sampled_from(EN_PLACES),
        ]
    ).flatmap(lambda parts: st.tuples(*parts)),
)
utterances = st.one_of(zh_utterances, en_utterances, fragment_soup)


def _flat(text: str) -> str:
    """Lowercase NFKC with punctuation and separators turned into spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(" " if unicodedata.category(c)[0] in "PZC" else c for c in text)


def _mentions(text: str, word: str) -> bool:
    if not word:
        return False
    normal = unicodedata.normalize("NFKC", text).lower()
    return word in normal or word in _flat(text)


def check_utterance(text: str, vocabulary_name: str) -> Command | None:
    vocabulary = VOCABULARIES[vocabulary_name]
    try:
        understood = parse_text(text, vocabulary)
    except CommandError as exc:
        assert_command_error(exc)
        event(f"text refused: {exc.code}")
        return None
    assert isinstance(understood, dict)
    assert set(understood) <= {"action", "burner", "in", "at"}, understood
    try:
        command = parse_command(understood, source="voice")
    except CommandError as exc:
        assert_command_error(exc)
        event(f"command refused: {exc.code}")
        return None
    note(f"{text!r} -> {command!r}")
    event(f"parsed: {command.action}")
    keys = set(vocabulary.values())
    assert command.source == "voice" and command.action in ACTIONS
    # Names only a known burner, or all of them; never a guess: a burner it names was
    # named in the text, and "all" for an action that cuts or restores came from a
    # whole-stove word or from naming every burner.
    assert command.burner in keys | {"all"}, command
    if command.burner != "all":
        words = [w for w, key in vocabulary.items() if key == command.burner]
        assert any(_mentions(text, w) for w in words), (text, command)
    elif command.action not in ("status", "cancel", "extend", "snooze", "timers"):
        every_one = all(
            any(_mentions(text, w) for w, k in vocabulary.items() if k == key) for key in keys
        )
        whole = any(_mentions(text, w) for w in (*ALL_WORDS, *STOVE_WORDS))
        assert every_one or whole, (text, command)
    if command.in_s is not None:
        assert 0 < command.in_s <= 24 * 3600
    if command.action == "timer":
        assert (command.in_s is None) != (command.at is None)
    if command.at is not None:
        assert re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", command.at), command.at
    return command


@settings(max_examples=800, deadline=None)
@given(text=utterances, vocabulary=st.sampled_from(sorted(VOCABULARIES)))
@example(text="in nan minutes turn off the stove", vocabulary="left and right")
@example(text="turn off the stove in infinity hours", vocabulary="left and right")
@example(text="turn off the left burner in 1" + "0" * 180 + " minutes", vocabulary="left and right")
@example(text="九十九小时后关火", vocabulary="left and right")
@example(text="0分钟后关火", vocabulary="left and right")
@example(text="关掉中间的火", vocabulary="left and right")
@example(text="关左灶", vocabulary="one burner, no side")
@example(text="下午二十五点关火", vocabulary="left and right")
@example(text="六点九十九分关火", vocabulary="left and right")
@example(text="关掉左边和右边的火", vocabulary="three with aliases")
def test_text_from_the_vocabulary(text: str, vocabulary: str) -> None:
    check_utterance(text, vocabulary)


EN_WORDS = {"a": 1, "an": 1, "two": 2, "ten": 10, "fifteen": 15, "forty-five": 45, "ninety": 90}


@st.composite
def delay_phrases(draw: st.DrawFn) -> tuple[str, float]:
    """A well-formed "shut off the left burner after <delay>", zh or en, and the delay
    it says in seconds."""
    n = draw(st.integers(1, 2000))
    hours, minutes = draw(st.integers(1, 30)), draw(st.integers(1, 59))
    say = draw(st.sampled_from([zh_numeral, str])) if n < 1000 else str
    word = draw(st.sampled_from(sorted(EN_WORDS)))
    place = "the left burner"
    phrases = [
        (f"{say(n)}分钟后关左灶", n * 60.0),
        (f"{say(n)}秒后关掉左边的火", float(n)),
        (f"{say(hours)}个小时后关左灶", hours * 3600.0),
        (f"{say(hours)}小时后关左灶", hours * 3600.0),
        (f"{say(hours)}个半小时后关左灶", hours * 3600.0 + 1800),
        (f"{say(hours)}个小时{say(minutes)}分钟以后关左灶", hours * 3600.0 + minutes * 60),
        ("半小时后关左灶", 1800.0),
        (f"turn off {place} in {n} minutes", n * 60.0),
        (f"in {n} min turn off {place}", n * 60.0),
        (f"turn off {place} after {n} seconds", float(n)),
        (f"switch off {place} in {hours} hours", hours * 3600.0),
        (f"turn off {place} in {word} minutes", EN_WORDS[word] * 60.0),
        (f"turn off {place} in half an hour", 1800.0),
        (f"turn off {place} in an hour and a half", 5400.0),
        (f"turn off {place} in an hour", 3600.0),
    ]
    return draw(st.sampled_from(phrases))


@settings(max_examples=300, deadline=None)
@given(case=delay_phrases())
@example(case=("turn off the left burner in an hour and a half", 5400.0))
@example(case=("一个半小时后关左灶", 5400.0))
@example(case=("一百零五分钟后关左灶", 6300.0))
@example(case=("一千五百分钟后关左灶", 90000.0))
@example(case=("一万零五百秒后关左灶", 10500.0))
@example(case=("一百五分钟后关左灶", 9000.0))
def test_text_delays_mean_what_they_say(case: tuple[str, float]) -> None:
    """A delay said in words becomes exactly that delay (or a refusal past 24 hours)."""
    text, seconds = case
    command = check_utterance(text, "left and right")
    if seconds > MAX_DELAY_S:
        assert command is None, f"{text!r}: {command!r}"
        return
    assert command is not None, text
    assert (command.action, command.burner, command.in_s) == ("timer", "kitchen/left", seconds)


# (period, hour said) -> hour on a 24-hour clock, for the periods' usual hours.
ZH_PERIODS = {"凌晨": range(1, 6), "早上": range(6, 10), "上午": range(8, 12),
              "下午": range(1, 7), "傍晚": range(5, 8), "晚上": range(7, 12)}  # fmt: skip


@st.composite
def clock_phrases(draw: st.DrawFn) -> tuple[str, str]:
    """A well-formed "shut off the left burner at <time>", zh or en, and the time it
    says as HH:MM."""
    h12, minute = draw(st.integers(1, 12)), draw(st.integers(0, 59))
    half = draw(st.sampled_from(["am", "pm"]))
    h24 = h12 % 12 + (12 if half == "pm" else 0)
    period = draw(st.sampled_from(sorted(ZH_PERIODS)))
    hour = draw(st.sampled_from(ZH_PERIODS[period]))
    zh_h24 = hour + 12 if period in ("下午", "傍晚", "晚上") else hour
    say = draw(st.sampled_from([zh_numeral, str]))
    phrases = [
        (f"turn off the left burner at {h12}:{minute:02d} {half}", f"{h24:02d}:{minute:02d}"),
        (f"at {h12} {half} turn off the left burner", f"{h24:02d}:00"),
        (f"{period}{say(hour)}点关左灶", f"{zh_h24:02d}:00"),
        (f"{period}{say(hour)}点半关左灶", f"{zh_h24:02d}:30"),
        (f"{period}{hour}:{minute:02d}关左灶", f"{zh_h24:02d}:{minute:02d}"),
        (f"中午{say(12)}点关左灶", "12:00"),
        (f"晚上{say(12)}点关左灶", "00:00"),
    ]
    return draw(st.sampled_from(phrases))


@settings(max_examples=200, deadline=None)
@given(case=clock_phrases())
@example(case=("turn off the left burner at 12:00 pm", "12:00"))
@example(case=("turn off the left burner at 12:30 am", "00:30"))
@example(case=("晚上十二点关左灶", "00:00"))
@example(case=("晚上12:00关左灶", "00:00"))
def test_text_clock_times_mean_what_they_say(case: tuple[str, str]) -> None:
    text, at = case
    command = check_utterance(text, "left and right")
    assert command is not None, text
    assert (command.action, command.burner, command.at) == ("timer", "kitchen/left", at)


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=260), vocabulary=st.sampled_from(sorted(VOCABULARIES)))
@example(text="\ufdfa" * 20, vocabulary="left and right")  # NFKC expands it 18-fold
@example(text="", vocabulary="left and right")
def test_text_arbitrary_unicode(text: str, vocabulary: str) -> None:
    check_utterance(text, vocabulary)


# =====================================================================================
# 3. The config loader
# =====================================================================================

EXAMPLE_TEXT = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
EXAMPLE_DATA = yaml.safe_load(EXAMPLE_TEXT)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config")


def check_load(path: Path) -> Config | None:
    """A Config that can be used, or a ConfigError whose every line is ``file: …``."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert exc.problems and str(exc) == "\n".join(exc.problems)
        for line in str(exc).split("\n"):
            assert line.startswith(f"{path}: "), line
            assert has_words(line[len(f"{path}: ") :]), line
        return None
    assert isinstance(config, Config)
    assert config.state_dir.is_absolute()
    for stove in config.stoves:
        for burner in stove.burners:
            relay = config.relays[burner.relay.device]
            assert 1 <= burner.relay.channel <= relay.channels
    ZoneInfo(config.timezone)
    for window in config.lock_windows:
        window.contains(dt.time(12, 0))  # the timer service asks exactly this at start-up
    return config


def write_and_load(scratch: Path, content: str | bytes) -> Config | None:
    path = scratch / "config.yaml"
    if isinstance(content, str):
        # A lone surrogate (U+D800) is written as the invalid UTF-8 an editor could
        # leave in the file, not raised by the test itself.
        content = content.encode("utf-8", "surrogatepass")
    path.write_bytes(content)
    return check_load(path)


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


numbers = st.one_of(
    st.integers(),
    st.floats(),
    st.sampled_from([0, -1, 0.0, -0.5, 10**30, -(10**30), math.nan, math.inf, -math.inf]),
)
path_like = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="/"), max_size=30),
    st.sampled_from(["", ".", "..", "/", "/nonexistent/x", "a" * 300, "a\x00b", "x/" * 200]),
)
time_like = st.one_of(
    st.sampled_from(["23:30", "06:00", "23:30:00", "23:30+08:00", "25:00", "6pm", ""]),
    st.integers(-100, 100_000),  # what YAML makes of an unquoted 23:30 (1410)
    numbers,
    junk,
)
burner_names = st.sampled_from(["all", "left", "kitchen", "kitchen/left", "nowhere", ""])
slugs = st.one_of(st.sampled_from(["nightly", "night", "a", "Bad Name", ""]), st.text(max_size=10))
SECTIONS: dict[str, st.SearchStrategy[Any]] = {
    "timezone": st.one_of(
        st.text(max_size=40),
        st.sampled_from(
            ["Asia/Shanghai", "America", "../etc", "/etc/passwd", "UTC\x00", "Europe/"]
        ),
        junk,
    ),
    "schedules": st.lists(
        st.fixed_dictionaries(
            {
                "name": slugs,
                "cron": st.one_of(
                    st.text(max_size=30),
                    st.lists(
                        st.sampled_from(["*", "*/0", "*/5", "0", "99", "-1", "1-3", "a", "L", ","]),
                        min_size=4,
                        max_size=6,
                    ).map(" ".join),
                ),
            },
            optional={
                "action": st.sampled_from(["shutoff", "lock", "explode"]),
                "burners": burner_names,
            },
        ),
        max_size=2,
    ),
    "lock_windows": st.lists(
        st.fixed_dictionaries(
            {"name": slugs, "start": time_like, "end": time_like},
            optional={"burners": burner_names},
        ),
        max_size=2,
    ),
    "mqtt": st.fixed_dictionaries(
        {"host": st.one_of(st.text(max_size=20), junk)},
        optional={
            "port": numbers,
            "username": st.text(max_size=8),
            "password": junk,
            "password_file": path_like,
            "password_env": st.text(max_size=12),
            "tls": st.fixed_dictionaries(
                {}, optional={"ca_file": path_like, "cert_file": path_like, "key_file": path_like}
            ),
            "protocol": st.sampled_from(["auto", "5", "3.1.1", 5, 3.1]),
            "base_topic": st.text(max_size=12),
            "command_timeout_s": numbers,
        },
    ),
    "relays": st.fixed_dictionaries(
        {
            "kitchen-relay": st.just(EXAMPLE_DATA["relays"]["kitchen-relay"]),
            "hob": st.fixed_dictionaries(
                {"driver": st.sampled_from(["miio", "mqtt", "simulated", "zigbee"])},
                optional={
                    "host": st.one_of(st.sampled_from(["192.168.1.50", "::1", "999.1.1.1"]), junk),
                    "token": st.one_of(st.text(max_size=34), st.just("00" * 16), junk),
                    "token_file": path_like,
                    "token_env": st.text(max_size=12),
                    "channels": numbers,
                    "protocol": st.sampled_from(["miot", "legacy", "x"]),
                    "mapping": st.dictionaries(
                        st.one_of(st.integers(-2, 10), st.text(max_size=3)),
                        st.fixed_dictionaries(
                            {"siid": numbers},
                            optional={"piid": numbers, "off_delay": junk},
                        ),
                        max_size=2,
                    ),
                    "timeout_s": numbers,
                    "poll_s": numbers,
                    "preset": st.sampled_from(["tasmota", "generic", "x"]),
                    "device": st.text(max_size=10),
                },
            ),
        }
    ),
    "inputs": st.fixed_dictionaries(
        {},
        optional={
            "flame": st.lists(
                st.fixed_dictionaries(
                    {"burner": burner_names, "topic": st.text(max_size=10)},
                    optional={"lit_above_mv": numbers, "stale_s": numbers},
                ),
                max_size=2,
            ),
            "presence": st.one_of(st.fixed_dictionaries({"topic": st.text(max_size=10)}), junk),
            "alarms": junk,
        },
    ),
    "trust": st.fixed_dictionaries(
        {},
        optional={
            "unlock_sources": st.one_of(st.lists(st.sampled_from(["cli", "mqtt", "root"])), junk),
            "max_command_age_s": numbers,
        },
    ),
    "rules": st.fixed_dictionaries(
        {},
        optional={
            "max_flame_on_min": numbers,
            "confirm_s": numbers,
            "snooze_max_min": numbers,
            "alarm_lock": junk,
        },
    ),
}


def _slots(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value inside a parsed YAML document."""
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, value in items:
        yield (*path, key)
        yield from _slots(value, (*path, key))


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated_example(draw: st.DrawFn) -> Any:
    """config.example.yaml with one to four things changed."""
    doc = copy.deepcopy(EXAMPLE_DATA)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["drop", "retype", "number", "unknown key", "typo", "section"]))
        if op == "section":
            name = draw(st.sampled_from(sorted(SECTIONS)))
            doc[name] = copy.deepcopy(draw(SECTIONS[name]))  # st.just shares its value
            continue
        slots = list(_slots(doc))
        if not slots:
            continue
        path = draw(st.sampled_from(slots))
        parent, key = _at(doc, path[:-1]), path[-1]
        if op == "drop":
            del parent[key]
        elif op == "retype":
            parent[key] = draw(junk)
        elif op == "number":
            parent[key] = draw(numbers)
        elif op == "unknown key" and isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(junk)
        elif op == "typo" and isinstance(parent, dict):
            parent[f"{key}{draw(st.sampled_from(['s', '_', 'x', '']))}"] = parent.pop(key)
    return doc


@settings(max_examples=200, deadline=None)
@given(doc=mutated_example())
@example(doc={**EXAMPLE_DATA, "mqtt": {"host": "h", "tls": {"ca_file": "a" * 300}}})
@example(doc={**EXAMPLE_DATA, "lock_windows": [{"name": "night", "start": 1410, "end": 360}]})
@example(
    doc={**EXAMPLE_DATA, "lock_windows": [{"name": "n", "start": "23:30+08:00", "end": "06:00"}]}
)
@example(
    doc={**EXAMPLE_DATA, "relays": {"kitchen\nrelay": EXAMPLE_DATA["relays"]["kitchen-relay"]}}
)
@example(doc={**EXAMPLE_DATA, "rules\n": {}})
def test_config_mutations_of_the_example(scratch: Path, doc: Any) -> None:
    write_and_load(scratch, dump(doc))


@settings(max_examples=100, deadline=None)
@given(doc=junk)
def test_config_arbitrary_documents(scratch: Path, doc: Any) -> None:
    assert write_and_load(scratch, dump(doc)) is None  # nothing random is a whole config


@st.composite
def edited_example_text(draw: st.DrawFn) -> str:
    """config.example.yaml as text, with a few characters cut, added or replaced."""
    text = EXAMPLE_TEXT
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        insert = draw(st.one_of(st.text(max_size=6), st.sampled_from(YAML_BITS)))
        text = text[:start] + insert + text[end:]
    return text


YAML_BITS = [
    ":", "- ", "[", "]", "{", "}", "\t", "\n", "  ", "'", '"', "&a ", "*a", "!!int ", "!!float ",
    "!!binary ", "!!timestamp ", "!!python/object:os.system ", "!!set ", "? ", "|", ">", "%YAML 1.1\n",
    "---\n", "...\n", "<<: ", "2020-13-45", "2020-02-30 25:61:61", "0x", "0o9", "1_0", ".nan", "~",
]  # fmt: skip
yaml_soup = st.lists(st.one_of(st.sampled_from(YAML_BITS), st.text(max_size=5)), max_size=30).map(
    "".join
)


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(edited_example_text(), yaml_soup, st.text(max_size=200)))
@example(text=EXAMPLE_TEXT + "\ntimezone: 2020-13-45\n")
@example(text=EXAMPLE_TEXT.replace("state_dir: ./state", "state_dir: !!timestamp 2020-99-01"))
@example(text=EXAMPLE_TEXT.replace("channels: 2", "channels: !!int 0x_zz"))
@example(text="[" * 500 + "]" * 500)
@example(text="- " * 2000 + "x")
@example(text="a: " + "{b: " * 1000 + "1" + "}" * 1000)
@example(text="relays: &a [*a]\nstoves: &b {x: *b}\n")
@example(text="\x00")
@example(text="!!timestamp ")
@example(text="a: !!float \nb: !!int ")
@example(text="timezone: \ud800\n")  # invalid UTF-8 in the file
def test_config_yaml_text(scratch: Path, text: str) -> None:
    write_and_load(scratch, text)


@settings(max_examples=100, deadline=None)
@given(blob=st.binary(max_size=600))
@example(blob=EXAMPLE_TEXT.encode("utf-16"))
@example(blob=EXAMPLE_TEXT.encode("utf-8")[:333])
@example(blob="timezone: Asia/Shanghai\n".encode("gb18030") + "上海".encode("gb18030"))
def test_config_binary_garbage(scratch: Path, blob: bytes) -> None:
    write_and_load(scratch, blob)


def test_config_example_loads() -> None:
    """The mutations above start from a file that loads (so their errors are theirs)."""
    assert check_load(ROOT / "config.example.yaml") is not None


# =====================================================================================
# 4. miIO device replies
# =====================================================================================

TOKEN = bytes.fromhex("00112233445566778899aabbccddeeff")
OTHER_TOKEN = bytes.fromhex("ffeeddccbbaa99887766554433221100")
DEVICE_ID = b"\x1a\x2b\x3c\x4d"


def packet(
    plaintext: bytes, token: bytes = TOKEN, stamp: int = 7, length: int | None = None
) -> bytes:
    """A datagram as a device builds it (hardware/miio_sim.py): header, MD5 checksum
    over header + token + data, AES data keyed from the token."""
    encrypted = Utils.encrypt(plaintext, token)
    size = 32 + len(encrypted) if length is None else length
    header = struct.pack(">HHI4sI", 0x2131, size, 0, DEVICE_ID, stamp)
    checksum = hashlib.md5(header + token + encrypted).digest()
    return header + checksum + encrypted


def json_packet(value: Any, token: bytes = TOKEN) -> bytes:
    return packet(json.dumps(value).encode() + b"\x00", token)


def hello_reply() -> bytes:
    return struct.pack(">HHI4sI", 0x2131, 32, 0, DEVICE_ID, 7) + b"\xff" * 16


def with_bad_checksum(data: bytes, flip: int) -> bytes:
    where = 16 + flip % 16
    return data[:where] + bytes([data[where] ^ 0x5A]) + data[where + 1 :]


# -- the packet decoder ----------------------------------------------------------------


def _bad_checksum(value: Any, flip: int) -> tuple[str, bytes]:
    return "bad checksum", with_bad_checksum(json_packet(value), flip)


datagrams = st.one_of(
    st.tuples(st.just("garbage"), st.binary(max_size=120)),
    st.tuples(
        st.just("object"), st.dictionaries(st.text(max_size=5), junk, max_size=4).map(json_packet)
    ),
    st.tuples(
        st.just("not an object"), junk.filter(lambda v: not isinstance(v, dict)).map(json_packet)
    ),
    st.tuples(st.just("not JSON"), st.binary(max_size=80).map(packet)),
    st.tuples(
        st.just("truncated"),
        st.builds(lambda p, cut: p[: cut % len(p)], junk.map(json_packet), st.integers(0, 10**6)),
    ),
    st.builds(_bad_checksum, junk, st.integers(0, 15)),
    st.tuples(st.just("other token"), junk.map(lambda v: json_packet(v, OTHER_TOKEN))),
    st.tuples(
        st.just("header says hello"),
        st.binary(max_size=60).map(lambda b: packet(b, length=32)),
    ),
)


@settings(max_examples=250, deadline=None)
@given(datagram=datagrams)
@example(datagram=("not JSON", packet(b"\x80")))  # python-miio: UnboundLocalError
@example(datagram=("header says hello", packet(b"\xff\xfe", length=32)))
def test_miio_decode_any_datagram(datagram: tuple[str, bytes]) -> None:
    kind, data = datagram
    protocol = MiioProtocol("127.0.0.1", TOKEN)
    try:
        payload = protocol._decode(data)
    except RelayError as exc:
        assert "127.0.0.1" in str(exc) and has_words(str(exc))
        assert kind not in ("object",), f"a good packet was refused: {exc}"
        if kind == "not an object":
            assert isinstance(exc, RelayBadReply)
        if kind == "bad checksum":
            assert isinstance(exc, RelayAuthError | RelayBadReply)
        return
    assert payload is None or isinstance(payload, dict)
    if kind == "object":  # a good packet decodes to exactly what the device sent
        assert payload == json.loads(Utils.decrypt(data[32:], TOKEN).rstrip(b"\x00"))
    if kind in ("not an object", "bad checksum", "other token"):
        assert payload is None, f"{kind} accepted as {payload!r}"


# -- the exchange: a scripted device on loopback -------------------------------------


class ScriptedDevice(asyncio.DatagramProtocol):
    """A miIO device on 127.0.0.1: answers the hello like a real one, and every request
    with the datagrams ``script(request_id)`` returns."""

    def __init__(self, script: Callable[[int], list[bytes]]) -> None:
        self.script = script
        self.transport: Any = None
        self.requests: list[dict[str, Any]] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data == HELLO:
            self.transport.sendto(hello_reply(), addr)
            return
        request = Message.parse(data, token=TOKEN).data.value
        self.requests.append(request)
        for datagram in self.script(request["id"]):
            self.transport.sendto(datagram, addr)


CHANNELS = {1: MiioChannelMap(MiotProperty(2, 1), MiotProperty(2, 3), off_delay_disarm=-1)}
OPS = ("read", "set", "legacy read")


async def _talk(op: str, script: Callable[[int], list[bytes]], timeout_s: float, seed: int) -> Any:
    loop = asyncio.get_running_loop()
    device = ScriptedDevice(script)
    transport, _ = await loop.create_datagram_endpoint(lambda: device, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    protocol = MiioProtocol(
        "127.0.0.1", TOKEN, port=port, timeout_s=timeout_s, attempts=2, rng=random.Random(seed)
    )
    relay = MiioRelay("hob", protocol, CHANNELS, legacy=op == "legacy read", poll_s=None)
    try:
        if op == "set":
            return await relay.set(1, True)
        return await relay.read(1)
    finally:
        await relay.close()
        transport.close()


def talk(
    op: str, script: Callable[[int], list[bytes]], timeout_s: float = 5.0, seed: int = 0
) -> Any:
    """Run one driver call against the scripted device; its result, or the exception."""

    async def go() -> Any:
        try:
            return await _talk(op, script, timeout_s, seed)
        except RelayError as exc:
            return exc

    return asyncio.run(go())


# What a device may answer, as (kind, a function of the request id -> datagram).
item = st.fixed_dictionaries(
    {"did": st.just("hob-1"), "siid": st.just(2), "piid": st.sampled_from([1, 3])},
    optional={
        "code": st.one_of(st.just(0), st.just(0.0), json_scalars, st.sampled_from([-4003, -4005])),
        "value": st.one_of(st.booleans(), json_scalars),
    },
)
results = st.one_of(
    st.lists(item, max_size=3),
    st.lists(st.sampled_from(["on", "off", "ON", 1, True, None]), max_size=2),
    junk,
    st.sampled_from([["ok"], 0, [0], "ok"]),
)
errors = st.one_of(
    st.fixed_dictionaries({}, optional={"code": json_scalars, "message": json_scalars}),
    junk,
)
reply_bodies = st.one_of(
    st.builds(lambda r: {"result": r}, results),
    st.builds(lambda e: {"error": e}, errors),
    st.builds(lambda e, r: {"error": e, "result": r}, errors, results),
    st.dictionaries(st.sampled_from(["res", "Result", "exe_time", "code"]), junk, max_size=2),
)


@dataclasses.dataclass(frozen=True)
class Terminal:
    """The reply that decides the call: it carries our request id, or cannot be ignored."""

    kind: str  # "reply", "not JSON", "not an object", "bad checksum"
    body: Any = None

    def datagram(self, request_id: int) -> bytes:
        if self.kind == "reply":
            return json_packet({"id": request_id, **self.body})
        if self.kind == "not JSON":
            return packet(self.body)
        if self.kind == "not an object":
            return json_packet(self.body)
        return with_bad_checksum(json_packet({"id": request_id, "result": self.body}), 3)


terminals = st.one_of(
    st.builds(Terminal, st.just("reply"), reply_bodies),
    # No "{" in it: whatever python-miio's JSON quirks make of it, never an object.
    st.builds(
        Terminal, st.just("not JSON"), st.binary(max_size=40).filter(lambda b: b"{" not in b)
    ),
    st.builds(Terminal, st.just("not an object"), junk.filter(lambda v: not isinstance(v, dict))),
    st.builds(Terminal, st.just("bad checksum"), results),
)


@dataclasses.dataclass(frozen=True)
class Noise:
    """A datagram the driver must ignore: not ours, or not a miIO packet at all."""

    kind: str  # "hello", "short", "other id", "no id", "id as text"
    body: Any = None

    def datagram(self, request_id: int) -> bytes:
        if self.kind == "hello":
            return hello_reply()
        if self.kind == "short":
            return bytes(self.body)
        if self.kind == "other id":
            offset, body = self.body
            return json_packet({**body, "id": request_id + offset})
        if self.kind == "id as text":
            return json_packet({**self.body, "id": str(request_id)})
        return json_packet(self.body)


noise = st.one_of(
    st.builds(Noise, st.just("hello")),
    st.builds(Noise, st.just("short"), st.binary(max_size=31)),
    st.builds(
        Noise,
        st.just("other id"),
        st.tuples(st.integers(-9999, 9999).filter(bool), reply_bodies),
    ),
    st.builds(Noise, st.just("no id"), reply_bodies),
    st.builds(Noise, st.just("id as text"), reply_bodies),
)


def _is_zero(code: Any) -> bool:
    """MIoT's per-item "ok": the JSON number 0 (a JSON false is not a number)."""
    return type(code) in (int, float) and code == 0


def expected_outcome(op: str, terminal: Terminal) -> Any:
    """What the driver must make of the deciding reply: a value, None (a set that
    was acknowledged), or the RelayError subclass it must raise."""
    if terminal.kind == "bad checksum":
        return RelayAuthError
    if terminal.kind in ("not JSON", "not an object"):
        return RelayBadReply
    body = terminal.body
    if "error" in body:
        return RelayRejected
    if "result" not in body:
        return RelayBadReply
    result = body["result"]
    if op == "legacy read":
        if isinstance(result, list) and result and result[0] in ("on", "off"):
            return result[0] == "on"
        return RelayBadReply
    count = 1 if op == "read" else 2
    if (
        not isinstance(result, list)
        or len(result) != count
        or not all(isinstance(i, dict) for i in result)
    ):
        return RelayBadReply
    if not all(_is_zero(i.get("code")) for i in result):
        return RelayRejected
    if op == "set":
        return None
    value = result[0].get("value")
    return value if isinstance(value, bool) else RelayBadReply


def assert_typed(outcome: Any) -> None:
    assert isinstance(outcome, RelayError)
    assert "hob" in str(outcome) and has_words(str(outcome)), str(outcome)
    if isinstance(outcome, RelayRejected):
        assert outcome.code is None or (
            isinstance(outcome.code, int) and not isinstance(outcome.code, bool)
        ), f"RelayRejected.code must be an int or None, got {outcome.code!r}"


@settings(max_examples=150, deadline=None)
@given(
    op=st.sampled_from(OPS),
    before=st.lists(noise, max_size=3),
    terminal=terminals,
    seed=st.integers(0, 2**32),
)
@example(op="read", before=[], terminal=Terminal("not JSON", b"\x80"), seed=0)
@example(
    op="read",
    before=[],
    terminal=Terminal("reply", {"result": [{"code": False, "value": True}]}),
    seed=0,
)
@example(
    op="set",
    before=[],
    terminal=Terminal("reply", {"result": [{"code": 0.0}, {"code": False}]}),
    seed=0,
)
@example(
    op="read",
    before=[],
    terminal=Terminal("reply", {"error": {"code": "-4001", "message": "x"}}),
    seed=0,
)
@example(
    op="read",
    before=[],
    terminal=Terminal("reply", {"result": [{"code": True, "value": True}]}),
    seed=0,
)
@example(
    op="read",
    before=[Noise("other id", (1, {"result": [{"code": 0, "value": False}]}))],
    terminal=Terminal("reply", {"result": [{"code": 0, "value": True}]}),
    seed=0,
)
def test_miio_reply_decides_exactly_what_it_says(
    op: str, before: list[Noise], terminal: Terminal, seed: int
) -> None:
    """Ignorable datagrams first (hellos, fragments, replies to other requests), then
    the one that decides: the driver's answer is exactly what that one says."""
    expected = expected_outcome(op, terminal)
    note(f"expected {expected!r}")
    outcome = talk(
        op, lambda rid: [n.datagram(rid) for n in before] + [terminal.datagram(rid)], seed=seed
    )
    if isinstance(expected, type):
        assert isinstance(outcome, expected), f"{op}: expected {expected.__name__}, got {outcome!r}"
        assert_typed(outcome)
    else:
        assert outcome == expected and type(outcome) is type(expected), f"{op}: {outcome!r}"


@settings(max_examples=100, deadline=None)
@given(op=st.sampled_from(OPS), before=st.lists(datagrams, max_size=3), terminal=terminals)
def test_miio_garbage_then_reply(
    op: str, before: list[tuple[str, bytes]], terminal: Terminal
) -> None:
    """Anything at all before the deciding reply: a typed error, or a state that a
    reply to this very request reported (never one read from garbage or another reply)."""
    sent: list[tuple[int, list[bytes]]] = []

    def script(rid: int) -> list[bytes]:
        sent.append((rid, [d for _, d in before] + [terminal.datagram(rid)]))
        return sent[-1][1]

    outcome = talk(op, script)
    if isinstance(outcome, BaseException):
        assert_typed(outcome)
        return
    possible = [
        expected_outcome(op, Terminal("reply", {k: v for k, v in reply.items() if k != "id"}))
        for rid, datagrams in sent
        for reply in replies_to(rid, datagrams)
    ]
    assert any(
        outcome == p and type(outcome) is type(p) for p in possible if not isinstance(p, type)
    ), f"{op}: returned {outcome!r}; the replies to it said {possible!r}"


def replies_to(rid: int, datagrams: list[bytes]) -> Iterator[dict[str, Any]]:
    """The decodable JSON objects among ``datagrams`` that carry request id ``rid``."""
    for data in datagrams:
        if len(data) == 32:
            continue
        try:
            value = Message.parse(data, token=TOKEN).data.value
        except (construct.ConstructError, PayloadDecodeException):
            continue
        if isinstance(value, dict) and value.get("id") == rid:
            yield value


@settings(max_examples=15, deadline=None)
@given(op=st.sampled_from(OPS), script=st.lists(noise, min_size=0, max_size=3))
def test_miio_no_reply_of_ours_is_a_typed_error(op: str, script: list[Noise]) -> None:
    """Only datagrams that are not the answer (or none at all): the call gives up with a
    typed error; it never reports a state."""
    outcome = talk(op, lambda rid: [n.datagram(rid) for n in script], timeout_s=0.05)
    assert_typed(outcome)
