"""crc.py: each CRC against its catalogue check value ("123456789") and the SPARTN frame CRC-4 against the
simulator's own bitwise implementation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pointperfect_forwarder.crc import SPARTN_CRCS, crc4_frame, crc8, crc16, crc24, crc32
from pointperfect_sim import frames as F

CHECK = b"123456789"


@pytest.mark.parametrize(
    ("crc", "value"),
    [
        (crc8, 0xF4),  # CRC-8/SMBUS
        (crc16, 0x31C3),  # CRC-16/XMODEM
        (crc24, 0xCDE703),  # CRC-24/LTE-A (RTCM3 CRC-24Q)
        (crc32, 0xFC891918),  # CRC-32/BZIP2
    ],
)
def test_catalogue_check_values(crc, value):
    assert crc(CHECK) == value
    assert crc(b"") == 0  # init 0 (CRC-32: init and xorout cancel)


def test_spartn_crc_types_in_order():
    assert (crc8, crc16, crc24, crc32) == SPARTN_CRCS  # crcType 0..3 of the SPARTN transport layer


@given(st.binary(min_size=3, max_size=3))
def test_frame_crc4_matches_the_simulator(head):
    head = head[:2] + bytes([head[2] & 0xF0])
    assert crc4_frame(head) == F.spartn_crc4(head)


@pytest.mark.parametrize("size", [1, 2, 3, 200, 598, 1099, 1100, 1101, 2500])
def test_crc24_matches_the_simulator_on_both_sides_of_the_fast_path(size):
    data = bytes((i * 131 + size) & 0xFF for i in range(size))
    assert crc24(data) == F.crc24q(data)
    assert crc24(b"\xff" * size) == F.crc24q(b"\xff" * size)  # every mask bit in use


@given(st.binary(max_size=1200))
def test_crc24_matches_the_simulator(data):
    assert crc24(data) == F.crc24q(data)
