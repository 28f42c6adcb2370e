"""lband.py: the L-band frequencies, the NEO-D9S tuning (CFG-VALSET, ACK, retries, retune) and PMP relay; in
the lab, keys only without a NEO-D9S and a NEO-D9S simulator tuned for the region."""

from __future__ import annotations

import time

import pytest
from fwd_helpers import credentials, forwarder_config, lab_keys, wait_until
from pointperfect_forwarder.backoff import Backoff
from pointperfect_forwarder.framing import Frame
from pointperfect_forwarder.lband import D9s, d9s_valset, parse_frequencies
from pointperfect_forwarder.outputs import Output
from pointperfect_forwarder.stats import Stats
from pointperfect_sim import frames as F
from pointperfect_sim.proc import free_port
from pointperfect_sim.receiver import D9sSim, ReceiverSim
from pointperfect_sim.replay import MqttReplayer
from test_health import metrics_text
from test_outputs import serial_output

# --- L-band frequencies -----------------------------------------------------------------------------------------------


def test_frequencies_service_shape_and_variants():
    assert parse_frequencies(F.frequencies_payload({"us": "1556.29", "eu": "1545.26"})) == {
        "us": 1556290000,
        "eu": 1545260000,
    }
    assert parse_frequencies(b'{"frequencies": {"US": {"current": {"value": 1556.29}}}}') == {"us": 1556290000}
    assert parse_frequencies(b'{"us": "1556.29", "eu": 1545260000}') == {"us": 1556290000, "eu": 1545260000}
    assert parse_frequencies(b'{"eu": {"value": "1545260"}}') == {"eu": 1545260000}  # kHz
    listed = b'{"frequencies": [{"region": "jp", "frequency": "1539.8125"}, {"name": "au", "value": "x"}]}'
    assert parse_frequencies(listed) == {"jp": 1539812500}
    for bad in (b"", b"[1]", b'{"us": "no"}', b'{"us": 5}', b"\xff"):
        with pytest.raises(ValueError):
            parse_frequencies(bad)


# --- NEO-D9S ----------------------------------------------------------------------------------------------------------

PMP_KEYS = {  # key ids (u-blox interface description), written out independently of pyubx2's database
    0x30B10012: 2200,  # SEARCH_WINDOW
    0x10B10016: 0,  # USE_SERVICE_ID
    0x30B10017: 21845,  # SERVICE_ID
    0x30B10013: 2400,  # DATA_RATE
    0x10B10014: 1,  # USE_DESCRAMBLER
    0x30B10015: 26969,  # DESCRAMBLER_INIT
    0x10B10019: 0,  # USE_PRESCRAMBLING
    0x50B1001A: 0xE15AE893E15AE893,  # UNIQUE_WORD
}


def test_d9s_valset_contents():
    want = {0x40B10011: 1556290000, **PMP_KEYS, 0x20910320: 1}  # CENTER_FREQUENCY ... MSGOUT_UBX_RXM_PMP_USB
    assert d9s_valset(1556290000, "USB") == F.cfg_valset(want)
    assert d9s_valset(1545260000, "UART2") == F.cfg_valset({0x40B10011: 1545260000, **PMP_KEYS, 0x2091031F: 1})


class FakeD9sPort(Output):
    kind = "serial"

    def __init__(self):
        super().__init__("/dev/ttyD9S")
        self.writes: list[bytes] = []

    def open(self):
        pass

    def write_some(self, data):
        self.writes.append(bytes(data))
        return len(data)

    def close(self):
        pass


def _d9s(clock, freq):
    stats = Stats("mqtt", "x:1", "serial", "/dev/x")
    relayed: list[Frame] = []
    port = FakeD9sPort()
    d9s = D9s(
        {"device": port.target, "baudrate": 38400, "port": "USB"},
        stats,
        relayed.append,
        lambda: freq[0],
        backoff=Backoff(1, 2, 5),
        no_data_timeout=30,
        output=port,
        clock=lambda: clock[0],
    )
    return d9s, stats, relayed, port


ACK = F.ubx_frame(0x05, 0x01, b"\x06\x8a")


def test_d9s_tunes_retries_relays_and_retunes():
    clock, freq = [0.0], [None]
    d9s, stats, relayed, port = _d9s(clock, freq)
    d9s.open()
    d9s.tick()
    assert port.writes == [] and stats.d9s_state == "pending"  # no frequency yet
    freq[0] = 1556290000
    d9s.tick()
    assert port.writes == [d9s_valset(1556290000, "USB")]
    for _ in range(3):
        clock[0] += 2.1
        d9s.tick()
    assert len(port.writes) == 3 and stats.d9s_state == "failed"  # three tries without an ACK
    clock[0] += 61
    d9s.tick()
    d9s.feed(ACK)
    assert stats.d9s_state == "applied"
    pmp = [F.rxm_pmp_frame(bytes([i]) * 100) for i in range(3)]
    d9s.feed(b"".join(pmp) + F.ubx_frame(0x0A, 0x38, b"\0" * 4))  # MON-PMP is not relayed
    assert [f.data for f in relayed] == pmp and stats.pmp_frames == 3
    freq[0] = 1545260000  # the topic moved the frequency
    d9s.tick()
    assert port.writes[-1] == d9s_valset(1545260000, "USB") and stats.d9s_state == "pending"
    d9s.feed(ACK)
    n = len(port.writes)
    clock[0] += 10
    d9s.feed(F.d9s_boot_notice())  # reset: RAM config gone
    d9s.tick()
    assert len(port.writes) == n + 1 and stats.d9s_state == "pending"
    d9s.feed(ACK)
    clock[0] += 31  # silent for longer than the no-data timeout: tuned again
    d9s.tick()
    assert len(port.writes) == n + 2


# --- lab: the daemon, a broker, a receiver simulator and a NEO-D9S simulator ------------------------------------------

US = (39.7, -105.0, 1600.0)  # Denver
LB_TOPICS = {"keys": "/pp/ubx/0236/Lb", "json_keys": "/pp/key/Lb"}
USE_SOURCE, USB_INPROT_SPARTN = 0x20A70001, 0x10770005
US_HZ = 1556290000


def _pmp(receiver) -> list[bytes]:
    return [f.raw for f in receiver.frames_of("ubx") if f.raw[2:4] == b"\x02\x72"]


@pytest.mark.timeout(120)
def test_lband_keys_only_without_a_d9s(tmp_path, broker, receiver, daemons):
    keys = lab_keys()
    creds = credentials(tmp_path, broker=broker, plan="lband", regions=["eu", "us"])
    cfg = forwarder_config(
        tmp_path,
        creds,
        ca_file=str(broker.ca_path),
        output=serial_output(receiver),
        receiver={"source": "lband"},
        watchdog={"no_data_timeout": 2},
    )
    replayer = MqttReplayer(broker, topic_map=LB_TOPICS).connect()
    try:
        key_frame = replayer.publish_keys(keys)
        replayer.publish("/pp/frequencies/Lb", F.frequencies_payload(F.LBAND_FREQUENCIES_MHZ), retain=True)
        fwd = daemons(cfg)
        st = fwd.wait_status(lambda s: s["healthy"] is True and s["receiver"]["config_state"] == "applied")
        assert receiver.config == {USE_SOURCE: 1, USB_INPROT_SPARTN: 1}
        assert receiver.wait_for(lambda r: key_frame in [f.raw for f in r.frames_of("ubx")])
        assert st["lband"] == {
            "mode": "keys_only",
            "device": None,
            "device_state": None,
            "frequency_hz": None,
            "d9s_state": None,
            "pmp_frames": 0,
        }
        assert st["region"]["topic"] is None
        time.sleep(4)  # twice the no-data timeout: keys come rarely, that is no reason to reconnect
        st = fwd.wait_status(lambda s: True)
        assert st["healthy"] is True and st["input"]["reconnects"] == 0
        assert "subscribed /pp/" not in fwd.log()  # no correction topic
    finally:
        replayer.stop()


@pytest.mark.timeout(120)
def test_lband_with_a_d9s_tuned_for_the_region_and_relayed(tmp_path, broker, daemons):
    keys, port = lab_keys(), free_port()
    us_receiver = ReceiverSim(tmp_path / "ttyGNSS", position=US, quality=0).start()
    d9s = D9sSim(tmp_path / "ttyD9S", port="UART2", beam_hz=US_HZ, frame_interval=0.2).start()
    try:
        us_receiver.quality = 1
        creds = credentials(tmp_path, broker=broker, plan="lband", regions=["eu", "us"])
        cfg = forwarder_config(
            tmp_path,
            creds,
            ca_file=str(broker.ca_path),
            output=serial_output(us_receiver),
            receiver={"source": "lband"},
            lband={"device": d9s.device_path, "port": "UART2"},
            health={"metrics_port": port},
        )
        replayer = MqttReplayer(broker, topic_map=LB_TOPICS).connect()
        try:
            key_frame = replayer.publish_keys(keys)
            replayer.publish("/pp/frequencies/Lb", F.frequencies_payload(F.LBAND_FREQUENCIES_MHZ), retain=True)
            fwd = daemons(cfg)
            st = fwd.wait_status(lambda s: s["lband"]["pmp_frames"] >= 5 and s["healthy"] is True)
            assert st["lband"] == {**st["lband"], "mode": "d9s", "device": d9s.device_path, "d9s_state": "applied"}
            assert st["lband"]["frequency_hz"] == US_HZ and st["lband"]["device_state"] == "open"
            assert st["region"] == {"selected": "us", "source": "position", "available": ["eu", "us"], "topic": None}
            assert d9s.tuned and d9s.pmp_config["CENTER_FREQUENCY"] == US_HZ
            assert d9s.pmp_config["SERVICE_ID"] == 21845 and d9s.pmp_config["DESCRAMBLER_INIT"] == 26969
            assert us_receiver.config == {USE_SOURCE: 1, USB_INPROT_SPARTN: 1}
            assert us_receiver.wait_for(lambda r: len(_pmp(r)) >= 5)
            relayed = _pmp(us_receiver)
            assert relayed == d9s.emitted[: len(relayed)]  # whole, in order, byte for byte
            raws = [f.raw for f in us_receiver.frames]
            assert raws.index(key_frame) < raws.index(relayed[0])  # keys first
            assert us_receiver.garbage_bytes == 0
            assert "pointperfect_forwarder_lband_pmp_frames_total" in metrics_text(port)

            d9s.reset()  # power cycle: the D9S forgets its tuning and prints its boot notices
            assert wait_until(lambda: "NEO-D9S reset detected" in fwd.log())
            assert d9s.wait_for(lambda d: d.tuned)
            before = len(_pmp(us_receiver))
            assert us_receiver.wait_for(lambda r: len(_pmp(r)) >= before + 3)
            assert _pmp(us_receiver) == d9s.emitted[: len(_pmp(us_receiver))]

            d9s.unplug()  # USB unplug: the port is reopened when it returns, and the D9S tuned again
            fwd.wait_status(lambda s: s["lband"]["device_state"] == "closed")
            d9s.replug()
            fwd.wait_status(lambda s: s["lband"]["device_state"] == "open" and s["lband"]["d9s_state"] == "applied")
            assert d9s.wait_for(lambda d: d.tuned)
            before = len(_pmp(us_receiver))
            assert us_receiver.wait_for(lambda r: len(_pmp(r)) >= before + 3)
            assert us_receiver.garbage_bytes == 0 and fwd.alive()
        finally:
            replayer.stop()
    finally:
        d9s.close()
        us_receiver.close()
