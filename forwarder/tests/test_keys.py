"""keys.py: ZTP dynamic keys to GPS week/TOW and UBX-RXM-SPARTNKEY."""

from __future__ import annotations

import json

import pytest
from pointperfect_forwarder.keys import (
    gps_week_tow,
    key_status,
    keys_in_frame,
    parse_dynamickeys,
    parse_json_keys,
    spartnkey_frame,
    spartnkey_poll,
)
from pointperfect_sim import frames as F
from pyubx2 import UBXReader

DK = {
    "current": {"start": 1661558382000, "duration": 2419199999, "value": "000102030405060708090a0b0c0d0e0f"},
    "next": {"start": 1663977582000, "duration": 2419199999, "value": "f0e0d0c0b0a090807060504030201000"},
}


def test_week_tow_reference_value():
    assert gps_week_tow(1661558382000) == (2224, 518400)
    assert gps_week_tow(1663977582000) == (2228, 518400)


def test_spartnkey_frame_layout():
    raw = spartnkey_frame(parse_dynamickeys(DK))
    assert len(raw) == 60 and raw[:4] == b"\xb5\x62\x02\x36" and raw[4:6] == (52).to_bytes(2, "little")
    msg = UBXReader.parse(raw)
    assert (msg.version, msg.numKeys) == (1, 2)
    assert (msg.validFromWno_01, msg.validFromTow_01, msg.keyLengthBytes_01) == (2224, 518400, 16)
    assert (msg.validFromWno_02, msg.validFromTow_02) == (2228, 518400)
    assert raw[6 + 20 : 6 + 36] == bytes.fromhex(DK["current"]["value"])
    assert raw == F.spartnkey_frame(DK)  # same bytes as the lab's independent builder
    assert keys_in_frame(raw) == 2


def test_poll_is_empty_spartnkey():
    assert spartnkey_poll() == b"\xb5\x62\x02\x36\x00\x00\x38\xaa"


def test_json_keys_and_validity():
    keys = parse_json_keys(json.dumps({"dynamickeys": DK}).encode())
    status = key_status(keys, now=1661558382 + 10)
    assert status["current"] == {
        "valid_from": "2022-08-26T23:59:42Z",
        "valid_until": "2022-09-23T23:59:41Z",
        "valid": True,
    }
    assert status["next"]["valid"] is False


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"current": {"start": 1, "duration": 1, "value": "zz" * 16}}, "dynamickeys.current.value"),
        ({"current": {"start": "1", "duration": 1, "value": "00" * 16}}, "dynamickeys.current.start"),
        ({"next": {"start": 1, "duration": 1, "value": "00" * 15}}, "dynamickeys.next.value"),
        ([], "dynamickeys: must be an object"),
    ],
)
def test_bad_keys_name_the_field(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_dynamickeys(bad)
