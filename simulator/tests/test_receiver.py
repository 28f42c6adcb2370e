"""ReceiverSim on a real pseudo-terminal, driven through pyserial like the forwarder drives a receiver."""

import os
import time
from pathlib import Path

import pytest
import serial
from pointperfect_sim import frames as F
from pointperfect_sim import receiver as D
from pointperfect_sim.receiver import ReceiverSim
from pyubx2 import UBXReader

KEYS = {
    "current": {"start": 1661558382000, "duration": 2419199999, "value": "00112233445566778899aabbccddeeff"},
    "next": {"start": 1663977582000, "duration": 2419199999, "value": "ffeeddccbbaa99887766554433221100"},
}
CONFIG = {0x20A70001: 0, 0x10770005: 1, 0x20140011: 3}


@pytest.fixture
def rx(tmp_path):
    sim = ReceiverSim(tmp_path / "ttyGNSS", gga_interval=0.2, position=(47.25, 8.5, 400.0)).start()
    yield sim
    sim.close()


def _port(path, timeout=0.3):
    return serial.Serial(str(path), 38400, timeout=timeout)


def _read_until(port, predicate, timeout=5.0):
    """Read and split what the receiver sends until predicate(frames) holds."""
    splitter = F.StreamSplitter()
    found = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found += splitter.feed(port.read(4096))
        if predicate(found):
            break
    return found


def test_frames_recorded_in_order_even_when_split(rx):
    stream = [F.spartnkey_frame(KEYS), *F.synthetic_spartn(5), F.rtcm_1005(), F.mga_frames(200)]
    data = b"".join(stream)
    with _port(rx.device_path) as port:
        for i in range(0, len(data), 37):  # odd write sizes split every frame
            port.write(data[i : i + 37])
            port.flush()
        assert rx.wait_for(lambda r: len(r.frames) >= 10)
    frames = rx.frames
    assert b"".join(f.raw for f in frames) == data
    assert [f.kind for f in frames][:7] == ["ubx", "spartn", "spartn", "spartn", "spartn", "spartn", "rtcm"]
    assert len(rx.frames_of("spartn")) == 5
    assert rx.garbage_bytes == 0


def test_garbled_frame_counts_garbage(rx):
    outer, after = F.synthetic_spartn(2)
    with _port(rx.device_path) as port:
        port.write(outer[:25] + F.mga_frames(10) + outer[25:] + after)
        assert rx.wait_for(lambda r: len(r.frames_of("spartn")) == 1 and r.garbage_bytes > 0)
    assert rx.frames_of("spartn")[0].raw == after
    assert rx.garbage_bytes == len(outer)


def test_valset_acked_and_applied_then_nak_when_refused(rx):
    with _port(rx.device_path) as port:
        port.reset_input_buffer()
        port.write(F.cfg_valset(CONFIG))
        found = _read_until(port, lambda fs: any(f.ubx_id and f.ubx_id[0] == 0x05 for f in fs))
        acks = [UBXReader.parse(f.raw) for f in found if f.ubx_id and f.ubx_id[0] == 0x05]
        assert [(a.identity, a.clsID, a.msgID) for a in acks] == [("ACK-ACK", 0x06, 0x8A)]
        assert rx.config == CONFIG
        rx.nak_valset = True
        port.write(F.cfg_valset({0x20A70001: 1}))
        found = _read_until(port, lambda fs: any(f.ubx_id and f.ubx_id[0] == 0x05 for f in fs))
        assert [UBXReader.parse(f.raw).identity for f in found if f.ubx_id and f.ubx_id[0] == 0x05] == ["ACK-NAK"]
        assert rx.config[0x20A70001] == 0


def test_spartnkey_stored_without_ack_and_poll_answered(rx):
    with _port(rx.device_path) as port:
        port.write(F.spartnkey_frame(KEYS))
        assert rx.wait_for(lambda r: len(r.keys) == 2)
        found = _read_until(port, lambda fs: False, timeout=0.5)
        assert not [f for f in found if f.kind == "ubx"]  # no ACK for SPARTNKEY
        port.write(F.ubx_frame(0x02, 0x36))  # poll
        found = _read_until(port, lambda fs: any(f.ubx_id == (0x02, 0x36) for f in fs))
    (answer,) = [f for f in found if f.ubx_id == (0x02, 0x36)]
    assert answer.raw == F.spartnkey_frame(KEYS)
    msg = UBXReader.parse(answer.raw)
    assert (msg.numKeys, msg.validFromWno_01, msg.validFromTow_01) == (2, 2224, 518400)


def test_gga_every_interval_with_position_and_no_fix(rx):
    with _port(rx.device_path) as port:
        found = _read_until(port, lambda fs: len([f for f in fs if f.name == "GNGGA"]) >= 3)
        gga = [f for f in found if f.name == "GNGGA"]
        assert len(gga) >= 3 and b",4715.00000,N,00830.00000,E,1," in gga[-1].raw
        rx.quality = 0
        found = _read_until(port, lambda fs: any(b",,,,,0," in f.raw for f in fs))
        assert any(b",,,,,0," in f.raw for f in found)


def test_reset_clears_state_and_prints_boot_banner(rx):
    with _port(rx.device_path) as port:
        port.write(F.cfg_valset(CONFIG) + F.spartnkey_frame(KEYS))
        assert rx.wait_for(lambda r: r.config and r.keys)
        assert rx.key_loads == 1
        port.reset_input_buffer()
        rx.reset()
        found = _read_until(port, lambda fs: any(b"u-blox AG" in f.raw for f in fs))
        assert any(f.raw.startswith(b"$GNTXT,01,01,02,u-blox AG") for f in found)
        assert rx.config == {} and rx.keys == [] and rx.resets == 1 and rx.key_loads == 1
        port.write(F.ubx_frame(0x02, 0x36))
        found = _read_until(port, lambda fs: any(f.ubx_id == (0x02, 0x36) for f in fs))
        answer = next(f for f in found if f.ubx_id == (0x02, 0x36))
        assert UBXReader.parse(answer.raw).numKeys == 0


def test_unplug_and_replug_through_stable_link(rx):
    link = Path(rx.device_path)
    assert link.is_symlink() and os.readlink(link) == rx.slave_path
    port = _port(link)
    port.write(F.cfg_valset(CONFIG))
    assert rx.wait_for(lambda r: r.config == CONFIG)
    rx.unplug()
    assert not link.exists()
    with pytest.raises(serial.SerialException):
        for _ in range(20):  # the open fd now reports EOF/EIO like a vanished USB device
            port.read(10)
            port.write(b"x")
    port.close()
    with pytest.raises(serial.SerialException):
        _port(link)
    rx.replug()
    assert link.is_symlink() and os.readlink(link) == rx.slave_path
    assert rx.config == {}  # USB power cycle lost the RAM config
    with _port(link) as port2:
        found = _read_until(port2, lambda fs: any(b"u-blox AG" in f.raw for f in fs))
        assert any(b"u-blox AG" in f.raw for f in found)
        frame = F.synthetic_spartn(1)[0]
        port2.write(frame)
        assert rx.wait_for(lambda r: r.frames_of("spartn") and r.frames_of("spartn")[-1].raw == frame)


def test_stall_blocks_the_writer(rx):
    with _port(rx.device_path) as port:
        rx.stall(True)
        port.write_timeout = 0.5
        chunk = b"".join(F.synthetic_spartn(20, size=400))
        with pytest.raises(serial.SerialTimeoutException):
            for _ in range(200):
                port.write(chunk)
        rx.stall(False)
        assert rx.wait_for(lambda r: len(r.frames_of("spartn")) >= 20)


# ---------------------------------------------------------------- position at run time, RXM-PMP, D9S

US = (39.7, -105.0, 1600.0)
PP_TUNE = {  # what the forwarder sends (Contract 2): PointPerfect L-band settings, US frequency, RXM-PMP on USB
    D.CFG_PMP["CENTER_FREQUENCY"]: 1556290000,
    D.CFG_PMP["SEARCH_WINDOW"]: 2200,
    D.CFG_PMP["USE_SERVICE_ID"]: 0,
    D.CFG_PMP["SERVICE_ID"]: 21845,
    D.CFG_PMP["DATA_RATE"]: 2400,
    D.CFG_PMP["USE_DESCRAMBLER"]: 1,
    D.CFG_PMP["DESCRAMBLER_INIT"]: 26969,
    D.CFG_PMP["USE_PRESCRAMBLING"]: 0,
    D.CFG_PMP["UNIQUE_WORD"]: 0xE15AE893E15AE893,
    D.CFG_MSGOUT_RXM_PMP["USB"]: 1,
}


def _gga_positions(frames):
    return [f.raw.split(b",")[2:6] for f in frames if f.kind == "nmea" and f.name.endswith("GGA")]


def test_position_changes_at_run_time(rx):
    with _port(rx.device_path) as port:
        assert _read_until(port, lambda fs: _gga_positions(fs))
        rx.position = US
        found = _read_until(port, lambda fs: any(p[3] == b"W" for p in _gga_positions(fs)))
    assert rx.position == US
    lat, ns, lon, ew = _gga_positions(found)[-1]
    assert (ns, ew) == (b"N", b"W") and lat.startswith(b"3942") and lon.startswith(b"10500")
    rx.quality = 0
    assert rx.quality == 0


def test_receiver_records_rxm_pmp(rx):
    data = b"".join(F.synthetic_spartn(10))
    frames = [F.rxm_pmp_frame(data[i : i + 504]) for i in range(0, len(data), 504)]
    with _port(rx.device_path) as port:
        port.write(b"".join(frames))
        port.flush()
        assert rx.wait_for(lambda r: len(r.pmp_frames()) == len(frames))
    assert [f.raw for f in rx.pmp_frames()] == frames and rx.pmp_user_data() == data
    assert rx.garbage_bytes == 0


@pytest.fixture
def d9s(tmp_path):
    sim = D.D9sSim(tmp_path / "ttyD9S", frame_interval=0.05, beam_hz=1556290000).start()
    yield sim
    sim.close()


class _Link:
    """A host port on a simulated device that keeps every frame it has read, in order."""

    def __init__(self, port):
        self.port = port
        self.splitter = F.StreamSplitter()
        self.frames = []

    def read_until(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not predicate(self.frames) and time.monotonic() < deadline:
            self.frames += self.splitter.feed(self.port.read(4096))
        return self.frames

    def valset(self, items):
        """CFG-VALSET; returns the ACK-ACK (5, 1) or ACK-NAK (5, 0) id that answers it."""
        start = len(self.frames)
        self.port.write(F.cfg_valset(items))
        self.port.flush()
        acks = ((5, 1), (5, 0))
        self.read_until(lambda fs: any(f.ubx_id in acks for f in fs[start:]))
        return next(f.ubx_id for f in self.frames[start:] if f.ubx_id in acks)

    def pmp(self):
        return [f.raw for f in self.frames if f.ubx_id == F.UBX_RXM_PMP]


def test_d9s_silent_until_tuned_then_emits_pmp(d9s):
    with _port(d9s.device_path) as port:
        link = _Link(port)
        assert link.valset({D.CFG_PMP["CENTER_FREQUENCY"]: 1556290000}) == (5, 1)  # ACK
        assert d9s.tune_problem() == "CFG-MSGOUT-UBX_RXM_PMP_USB not 1"
        assert link.valset({D.CFG_MSGOUT_RXM_PMP["USB"]: 1}) == (5, 1)
        assert "DESCRAMBLER_INIT is 23560" in d9s.tune_problem()  # the module defaults do not receive PointPerfect
        time.sleep(0.2)
        assert d9s.emitted == []
        assert link.valset(PP_TUNE) == (5, 1)
        assert d9s.tuned and d9s.pmp_config["CENTER_FREQUENCY"] == 1556290000
        link.read_until(lambda fs: len(link.pmp()) >= 3)
    pmp = link.pmp()
    assert pmp == d9s.emitted[: len(pmp)]
    for raw in pmp:
        msg = UBXReader.parse(raw)
        assert msg.identity == "RXM-PMP" and msg.numBytesUserData == 504
    spartn, _ = F.split_frames(b"".join(F.pmp_user_data(f) for f in pmp))
    assert len(spartn) > 3 and {f.kind for f in spartn} == {"spartn"}  # SPARTN split over the user data


def test_d9s_wrong_beam_and_reset(d9s):
    with _port(d9s.device_path) as port:
        link = _Link(port)
        assert link.valset({**PP_TUNE, D.CFG_PMP["CENTER_FREQUENCY"]: 1545260000}) == (5, 1)  # EU frequency
        assert "no beam" in d9s.tune_problem()
        time.sleep(0.2)
        assert d9s.emitted == []
        assert link.valset(PP_TUNE) == (5, 1)
        assert d9s.wait_for(lambda d: len(d.emitted) >= 1)
        d9s.reset()
        found = link.read_until(lambda fs: any(f.ubx_id == (4, 2) and b"NEO-D9S" in f.payload for f in fs))
        assert any(b"FWVER=PMP 1.04" in f.payload for f in found)
        assert d9s.config == {} and not d9s.tuned
        count = len(d9s.emitted)
        time.sleep(0.2)
        assert len(d9s.emitted) == count  # forgot the config: silent until tuned again
        port.write(F.ubx_frame(0x0A, 0x04))
        port.flush()
        found = _read_until(port, lambda fs: any(f.ubx_id == (0x0A, 0x04) for f in fs))
        ver = next(f for f in found if f.ubx_id == (0x0A, 0x04))
        assert b"MOD=NEO-D9S" in ver.payload and b"PROTVER=24.00" in ver.payload


def test_d9s_given_bytes_relay_byte_for_byte(tmp_path):
    """The chain a forwarder builds: D9S pty -> (relay) -> main receiver pty; the receiver gets exactly what the D9S
    emitted."""
    spartn = b"".join(F.synthetic_spartn(20, size=90))
    d9s = D.D9sSim(tmp_path / "d9s", spartn=spartn, frame_interval=0.02, version=1, strict=False).start()
    rx = ReceiverSim(tmp_path / "gnss", gga_interval=5).start()
    try:
        with _port(d9s.device_path, timeout=0.05) as d9s_port, _port(rx.device_path) as rx_port:
            link = _Link(d9s_port)
            assert link.valset({D.CFG_PMP["CENTER_FREQUENCY"]: 1556290000, D.CFG_MSGOUT_RXM_PMP["USB"]: 1}) == (5, 1)
            link.read_until(lambda fs: len(link.pmp()) * 504 >= len(spartn))
            for raw in link.pmp():
                rx_port.write(raw)  # relayed whole
            rx_port.flush()
            assert rx.wait_for(lambda r: len(r.pmp_frames()) == len(d9s.emitted))
        assert d9s.emitted_user_data() == spartn  # given bytes, in order, then nothing more
        assert b"".join(f.raw for f in rx.pmp_frames()) == d9s.emitted_bytes()
        assert rx.pmp_user_data() == spartn
        assert len(d9s.emitted) == -(-len(spartn) // 504)
    finally:
        d9s.close()
        rx.close()
