"""Our request encoder builds exactly the bytes python-miio's ``Message.build`` does,
and python-miio (and so any miIO device) reads them back as sent."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from miio.protocol import Message

from stove_ctl.drivers.miio import RequestCodec

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {
        "id": st.integers(1, 9999),
        "method": st.sampled_from(["set_properties", "get_properties", "miIO.info", "x"]),
        "params": st.lists(json_values, max_size=4),
    }
)


def python_miio_build(request: dict, token: bytes, device_id: bytes, stamp: int) -> bytes:
    header = {
        "length": 0,
        "unknown": 0,
        "device_id": device_id,
        "ts": datetime.datetime.fromtimestamp(stamp, datetime.UTC).replace(tzinfo=None),
    }
    return bytes(
        Message.build(
            {"data": {"value": request}, "header": {"value": header}, "checksum": 0},
            token=token,
        )
    )


@settings(max_examples=300, deadline=None)
@given(
    request=requests,
    token=st.binary(min_size=16, max_size=16),
    device_id=st.binary(min_size=4, max_size=4),
    stamp=st.integers(0, 2**32 - 1),
)
def test_same_bytes_as_python_miio(request, token, device_id, stamp) -> None:
    ours = RequestCodec(token).encode(request, device_id, stamp)
    assert ours == python_miio_build(request, token, device_id, stamp)
    parsed = Message.parse(ours, token=token)
    assert parsed.data.value == json.loads(json.dumps(request))
    assert parsed.header.value.device_id == device_id
    assert parsed.header.value.length == len(ours)


@pytest.mark.parametrize("size", [0, 14, 15, 16, 17, 200])
def test_every_padding_length(size: int) -> None:
    """PKCS#7 pads a payload that fills its last block with a whole block of 16."""
    token = bytes(range(16))
    request = {"id": 1, "method": "m", "params": ["x" * size]}
    ours = RequestCodec(token).encode(request, b"\x01\x02\x03\x04", 1_700_000_000)
    assert ours == python_miio_build(request, token, b"\x01\x02\x03\x04", 1_700_000_000)
    assert (len(ours) - 32) % 16 == 0


def test_a_wrong_token_is_caught_by_the_checksum() -> None:
    ours = RequestCodec(b"a" * 16).encode({"id": 1, "method": "m", "params": []}, b"abcd", 5)
    with pytest.raises(Exception, match=r"(?i)checksum"):
        Message.parse(ours, token=b"b" * 16)
