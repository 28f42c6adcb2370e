"""framing.py: the framer gives the same whole frames for any chunking, resyncs on garbage, and checks every CRC."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from pointperfect_forwarder.framing import Framer
from pointperfect_sim import frames as F
from pyspartn import SPARTNReader

SPARTN = F.synthetic_spartn(12) + [F.spartn_frame(1, 0, os.urandom(600), crc_type=t) for t in range(4)]
SPARTN += [F.spartn_frame(2, 1, os.urandom(40), encrypted=False, time_tag_32=False)]
OTHER = [
    F.spartnkey_frame({"current": {"start": 1661558382000, "value": "00" * 16}}),
    F.rtcm_1005(),
    F.gga_sentence(),
    F.ubx_frame(0x13, 0x00, b"\x01" * 300),
]
ALL = SPARTN + OTHER
NOT_PREAMBLE = st.binary(max_size=40).map(lambda b: bytes(x for x in b if x not in (0x73, 0xB5, 0xD3, 0x24)))


def _feed_chunks(framer: Framer, data: bytes, cuts: list[int]) -> list[bytes]:
    out, pos = [], 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out += [f.data for f in framer.feed(data[pos:cut])]
        pos = cut
    return out


@settings(max_examples=200, deadline=None)
@given(order=st.permutations(ALL), cuts=st.lists(st.integers(0, 4000), max_size=30))
def test_any_chunking_gives_identical_frames(order, cuts):
    data = b"".join(order)
    framer = Framer()
    assert _feed_chunks(framer, data, [c for c in cuts if c < len(data)]) == list(order)
    assert framer.garbage_bytes == 0 and framer.pending == 0


@settings(max_examples=200, deadline=None)
@given(gaps=st.lists(NOT_PREAMBLE, min_size=len(ALL) + 1, max_size=len(ALL) + 1), cuts=st.lists(st.integers(0, 5000)))
def test_garbage_between_frames_is_skipped_and_counted(gaps, cuts):
    data = gaps[0] + b"".join(f + g for f, g in zip(ALL, gaps[1:], strict=True))
    framer = Framer()
    assert _feed_chunks(framer, data, [c for c in cuts if c < len(data)]) == ALL
    assert framer.garbage_bytes == sum(map(len, gaps))


@settings(max_examples=100, deadline=None)
@given(victim=st.integers(0, len(SPARTN) - 1), offset=st.integers(0, 10_000), flip=st.integers(1, 255))
def test_corrupted_frame_dropped_others_kept(victim, offset, flip):
    frames = list(SPARTN)
    bad = bytearray(frames[victim])
    bad[offset % len(bad)] ^= flip
    data = b"".join(frames[:victim]) + bytes(bad) + b"".join(frames[victim + 1 :])
    framer = Framer(("spartn",))
    got = [f.data for f in framer.feed(data + b"\x00" * 1200)]  # padding settles a false header in the damage
    assert got == frames[:victim] + frames[victim + 1 :]


def test_split_frame_is_held_until_complete():
    framer = Framer(("spartn",))
    frame = SPARTN[0]
    assert framer.feed(frame[:10]) == []
    assert framer.pending == 10
    assert [f.data for f in framer.feed(frame[10:])] == [frame]
    framer.feed(frame[:5])
    framer.reset()  # a reconnect drops the partial frame
    assert framer.pending == 0 and framer.garbage_bytes == 5


def test_counts_per_stream():
    framer = Framer()
    framer.feed(b"".join(ALL))
    assert framer.frames == {"spartn": len(SPARTN), "ubx": 2, "rtcm": 1, "nmea": 1}
    assert framer.bytes["spartn"] == sum(map(len, SPARTN))


def test_matches_pyspartn_on_synthetic_stream():
    data = b"".join(SPARTN)
    ours = [f.data for f in Framer(("spartn",)).feed(data)]
    theirs = [raw for raw, _ in SPARTNReader(__import__("io").BytesIO(data), quitonerror=0)]
    assert ours == theirs == SPARTN


def test_disabled_streams_are_garbage():
    framer = Framer(("spartn",))
    assert [f.data for f in framer.feed(OTHER[0] + SPARTN[0])] == [SPARTN[0]]
    assert framer.garbage_bytes == len(OTHER[0])


def test_garbage_callback_reports_every_discarded_byte():
    seen = []
    framer = Framer(on_garbage=seen.append)
    good = F.ubx_frame(0x02, 0x36, b"\x01\x00\x00\x00")
    framer.feed(b"\x00\xffjunk" + good[:3])
    framer.feed(good[3:] + b"\x01\x02")
    framer.reset()
    assert sum(seen) == framer.garbage_bytes == 6 + 2
