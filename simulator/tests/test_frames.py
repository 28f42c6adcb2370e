"""Frame builders checked by independent parsers (pyspartn, pyubx2, pyrtcm, pynmeagps) and by the stream splitter."""

import io
import json

import pytest
from pointperfect_sim import frames as F
from pynmeagps import NMEAReader
from pyrtcm import RTCMReader
from pyspartn import SPARTNReader
from pyspartn.spartnreader import ERRRAISE
from pyubx2 import SET, UBXReader

KEYS = {
    "current": {"start": 1661558382000, "duration": 2419199999, "value": "00112233445566778899aabbccddeeff"},
    "next": {"start": 1661558382000 + 2419200000, "duration": 2419199999, "value": "ffeeddccbbaa99887766554433221100"},
}
# first header bytes of real PointPerfect frames (pyspartn capture): preamble + 3 header bytes incl. frame CRC
REAL_HEADERS = [
    bytes.fromhex("73045fee"),
    bytes.fromhex("73041f61"),
    bytes.fromhex("7302fae4"),
    bytes.fromhex("7302d7e8"),
]


def _spartn_all(data: bytes):
    return list(SPARTNReader(io.BytesIO(data), quitonerror=ERRRAISE))


def test_crc4_matches_real_headers():
    for head in REAL_HEADERS:
        body = bytearray(head[1:])
        expected = body[2] & 0x0F
        body[2] &= 0xF0
        assert F.spartn_crc4(bytes(body)) == expected
    # and a one-bit change is detected
    body = bytearray(REAL_HEADERS[0][1:])
    body[0] ^= 0x10
    body[2] &= 0xF0
    assert F.spartn_crc4(bytes(body)) != REAL_HEADERS[0][3] & 0x0F


@pytest.mark.parametrize("crc_type", [0, 1, 2, 3])
@pytest.mark.parametrize("encrypted", [True, False])
@pytest.mark.parametrize("wide", [True, False])
def test_spartn_frames_parse_with_valid_crc(crc_type, encrypted, wide):
    payload = bytes(range(200))
    tag = 452044260 if wide else 42660
    raw = F.spartn_frame(1, 2, payload, crc_type=crc_type, encrypted=encrypted, time_tag_32=wide, time_tag=tag)
    (got,) = _spartn_all(raw)
    parsed_raw, msg = got
    assert parsed_raw == raw
    assert (msg.msgType, msg.msgSubtype, msg.nData, msg.crcType) == (1, 2, len(payload), crc_type)
    assert msg.eaf == int(encrypted) and msg.gnssTimeTag == tag and msg.timeTagtype == int(wide)
    header = bytearray(raw[1:4])
    assert msg.frameCrc == header[2] & 0x0F
    header[2] &= 0xF0
    assert F.spartn_crc4(bytes(header)) == msg.frameCrc


def test_corrupted_spartn_is_rejected_by_pyspartn_and_splitter():
    raw = bytearray(F.spartn_frame(0, 0, b"x" * 50))
    raw[20] ^= 0xFF
    with pytest.raises(Exception, match="CRC"):
        _spartn_all(bytes(raw))
    frames, garbage = F.split_frames(bytes(raw))
    assert frames == [] and garbage == len(raw)


def test_schedule_has_real_cadence_and_rate():
    sched = F.SpartnSchedule()
    total = 0
    kinds = []
    for second in range(60):
        batch = sched.epoch(second, when=1714348260)
        total += sum(map(len, batch))
        kinds += [(f[1] >> 1, f[4] >> 4) for f in batch]
        for raw, _ in _spartn_all(b"".join(batch)):
            assert raw in batch
    assert kinds.count((0, 0)) == 12 and kinds.count((2, 0)) == 4 and kinds.count((1, 3)) == 10
    assert 150 < total / 60 < 600  # the real stream is ~323 B/s


def test_gps_week_tow_check_value():
    assert F.gps_week_tow(1661558382000) == (2224, 518400)


def test_spartnkey_frame_from_dynamickeys():
    raw = F.spartnkey_frame(KEYS)
    assert len(raw) == 60  # two keys: 52-byte payload
    msg = UBXReader.parse(raw, msgmode=SET)
    assert msg.identity == "RXM-SPARTN-KEY"
    assert (msg.numKeys, msg.validFromWno_01, msg.validFromTow_01) == (2, 2224, 518400)
    assert (msg.validFromWno_02, msg.validFromTow_02) == (2228, 518400)
    assert bytes(getattr(msg, f"key_{i:02d}") for i in range(1, 17)).hex() == KEYS["current"]["value"]
    assert F.parse_spartnkey_payload(raw[6:-2])[1]["value"] == KEYS["next"]["value"]
    single = F.spartnkey_frame({"current": KEYS["current"], "next": None})
    assert UBXReader.parse(single, msgmode=SET).numKeys == 1


def test_ubx_cfg_valset_and_checksum():
    raw = F.cfg_valset({0x20A70001: 0, 0x10770005: 1, 0x20140011: 3})
    msg = UBXReader.parse(raw, msgmode=SET)
    assert msg.CFG_SPARTN_USE_SOURCE == 0 and msg.CFG_USBINPROT_SPARTN == 1 and msg.CFG_NAVHPG_DGNSSMODE == 3
    bad = raw[:-1] + bytes([raw[-1] ^ 1])
    with pytest.raises(Exception, match="checksum"):
        UBXReader.parse(bad, msgmode=SET)


def test_rtcm_1005_parses():
    raw = F.rtcm_1005(42, (3978123.4567, -12345.6789, 4968765.4321))
    msg = RTCMReader.parse(raw)
    assert msg.identity == "1005" and msg.DF003 == 42
    assert pytest.approx(3978123.4567) == msg.DF025 and pytest.approx(-12345.6789) == msg.DF026
    assert F.split_frames(raw)[0][0].name == "RTCM-1005"


def test_gga_sentences_parse():
    msg = NMEAReader.parse(F.gga_sentence(47.5, -122.25, 55.5, quality=4))
    assert (msg.msgID, msg.quality) == ("GGA", 4)
    assert msg.lat == pytest.approx(47.5) and msg.lon == pytest.approx(-122.25) and msg.alt == pytest.approx(55.5)
    nofix = NMEAReader.parse(F.gga_sentence(quality=0))
    assert nofix.quality == 0 and nofix.lat == ""


def test_boot_notice_is_valid_nmea_and_inf():
    text = F.boot_notice(with_inf=True)
    frames, garbage = F.split_frames(text)
    assert garbage == 0
    assert frames[0].raw == b"$GNTXT,01,01,02,u-blox AG - www.u-blox.com*4E\r\n"  # as a real F9P prints it
    assert any(f.kind == "ubx" and f.ubx_id == (0x04, 0x02) for f in frames)


def test_splitter_mixed_stream_in_order_and_byte_by_byte():
    parts = [
        F.spartnkey_frame(KEYS),
        *F.synthetic_spartn(3),
        F.rtcm_1005(),
        F.gga_sentence(),
        F.mga_frames(300),
        F.spartn_frame(2, 0, b"q" * 40, crc_type=3),
    ]
    stream = b"".join(parts)
    splitter = F.StreamSplitter()
    found = []
    for i in range(len(stream)):  # worst case: one byte at a time
        found += splitter.feed(stream[i : i + 1])
    assert b"".join(f.raw for f in found) == stream
    assert splitter.garbage_bytes == 0
    kinds = [f.kind for f in found]
    assert kinds[0] == "ubx" and kinds[1:4] == ["spartn"] * 3 and kinds[-1] == "spartn"


def test_splitter_detects_spliced_frame():
    outer, after = F.synthetic_spartn(2)
    inner = F.mga_frames(10)  # one MGA frame spliced into a SPARTN frame (a known peer bug)
    frames, garbage = F.split_frames(outer[:30] + inner + outer[30:] + after)
    assert [f.raw for f in frames] == [inner, after]
    assert garbage == len(outer)


def test_iter_capture_file(tmp_path):
    data = b"".join(F.synthetic_spartn(10))
    path = tmp_path / "cap.bin"
    path.write_bytes(b"\x00junk" + data)
    assert b"".join(F.iter_spartn_file(path)) == data


# ---------------------------------------------------------------- L-band


@pytest.mark.parametrize("version", [0, 1])
def test_rxm_pmp_frame_both_layouts_parse_with_pyubx2(version):
    data = b"".join(F.synthetic_spartn(4))[:300]
    frame = F.rxm_pmp_frame(data, version=version, time_tag=4321)
    msg = UBXReader.parse(frame)
    assert msg.identity == "RXM-PMP" and msg.version == version and msg.timeTag == 4321
    assert msg.serviceIdentifier == 21845 and (msg.uniqueWord1, msg.uniqueWord2) == (0xE15AE893, 0xE15AE893)
    assert frame[2:4] == b"\x02\x72"
    if version == 1:
        assert len(frame) == 8 + 24 + 300 and msg.numBytesUserData == 300
        assert F.pmp_user_data(frame) == data
    else:
        assert len(frame) == 8 + 528  # always 504 bytes of user data
        assert F.pmp_user_data(frame) == data + bytes(204)
    assert F.pmp_user_data(frame[6:-2]) == F.pmp_user_data(frame)  # payload only works too
    assert len(F.rxm_pmp_frame(bytes(504))) == 536
    with pytest.raises(ValueError):
        F.rxm_pmp_frame(bytes(505))


def test_pmp_frames_split_by_the_splitter():
    data = b"".join(F.synthetic_spartn(12))
    frames = [F.rxm_pmp_frame(data[i : i + 504]) for i in range(0, len(data), 504)]
    found, garbage = F.split_frames(b"".join(frames))
    assert garbage == 0 and [f.raw for f in found] == frames and {f.kind for f in found} == {"ubx"}
    assert b"".join(F.pmp_user_data(f.raw) for f in found) == data
    spartn, garbage = F.split_frames(data)  # the SPARTN inside survives the split over PMP frames
    assert garbage == 0 and len(spartn) == 12


def test_frequencies_payload_is_the_service_shape():
    # semuconsulting/pygnssutils tests/test_static.py testparsemqttfreq, byte for byte
    expected = (
        b'{\n  "frequencies": {\n    "us": {\n      "current": {\n        "value": "1556.29"\n      }\n    },\n'
        b'    "eu": {\n      "current": {\n        "value": "1545.26"\n      }\n    }\n  }\n}'
    )
    assert F.frequencies_payload({"us": 1556.29, "eu": 1545.26}) == expected
    assert F.frequencies_payload(F.LBAND_FREQUENCIES_MHZ) == expected
    assert json.loads(F.frequencies_payload({"jp": "1548.23"})) == {
        "frequencies": {"jp": {"current": {"value": "1548.23"}}}
    }


def test_d9s_boot_notice_is_ubx_inf():
    found, garbage = F.split_frames(F.d9s_boot_notice())
    assert garbage == 0 and {f.ubx_id for f in found} == {(0x04, 0x02)}
    assert any(b"MOD=NEO-D9S" in f.payload for f in found)
