"""Integration: region choice from the receiver position and the L-band modes (real Mosquitto, receiver and NEO-D9S
simulators on ptys)."""

from __future__ import annotations

import time
import urllib.request

import pytest
from fwd_helpers import credentials, forwarder_config, lab_keys, wait_until
from pointperfect_sim import frames as F
from pointperfect_sim.proc import free_port
from pointperfect_sim.receiver import D9sSim, ReceiverSim
from pointperfect_sim.replay import MqttReplayer

pytestmark = pytest.mark.timeout(120)
US = (39.7, -105.0, 1600.0)  # Denver
FIVE = ["au", "eu", "jp", "kr", "us"]
LB_TOPICS = {"keys": "/pp/ubx/0236/Lb", "json_keys": "/pp/key/Lb"}
USE_SOURCE, USB_INPROT_SPARTN = 0x20A70001, 0x10770005
US_HZ = 1556290000


@pytest.fixture
def us_receiver(tmp_path):
    """A receiver in Denver that has no fix yet (`quality = 1` gives it one)."""
    sim = ReceiverSim(tmp_path / "ttyGNSS", position=US, quality=0).start()
    yield sim
    sim.close()


def _serial(receiver) -> dict:
    return {"type": "serial", "device": receiver.device_path, "baudrate": 115200}


def _metrics(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def _pmp(receiver) -> list[bytes]:
    return [f.raw for f in receiver.frames_of("ubx") if f.raw[2:4] == b"\x02\x72"]


def test_region_from_the_receiver_position_one_correction_topic(tmp_path, broker, us_receiver, daemons):
    keys, port = lab_keys(), free_port()
    creds = credentials(tmp_path, broker=broker, regions=FIVE)
    cfg = forwarder_config(
        tmp_path, creds, ca_file=str(broker.ca_path), output=_serial(us_receiver), health={"metrics_port": port}
    )
    replayer = MqttReplayer(broker).connect()
    try:
        key_frame = replayer.publish_keys(keys)
        fwd = daemons(cfg)
        fwd.wait_status(lambda s: s["input"]["state"] == "connected" and s["receiver"]["config_state"] == "applied")
        assert us_receiver.wait_for(lambda r: key_frame in [f.raw for f in r.frames_of("ubx")])
        # before the first fix: no region, no correction topic, only the keys reach the receiver
        for topic in ("/pp/ip/us", "/pp/ip/eu"):
            replayer.publish(topic, b"".join(F.synthetic_spartn(5)))
        st = fwd.wait_status(lambda s: s["region"]["available"] == FIVE)
        assert st["region"] == {"selected": None, "source": None, "available": FIVE, "topic": None}
        assert st["healthy"] is False and st["last_error"] == "waiting for a position fix"
        assert st["input"]["state"] == "connected"
        time.sleep(1)
        assert us_receiver.frames_of("spartn") == []
        assert "subscribed /pp/ip/" not in fwd.log()

        us_receiver.quality = 1  # first fix, in Denver
        # healthy = connected with the chosen region's topic acknowledged (SUBACK): corrections flow from here on
        st = fwd.wait_status(lambda s: s["region"]["selected"] is not None and s["healthy"])
        assert st["region"] == {"selected": "us", "source": "position", "available": FIVE, "topic": "/pp/ip/us"}
        assert st["input"]["state"] == "connected"
        us, eu = F.synthetic_spartn(40), F.synthetic_spartn(40)
        for i in range(0, 40, 4):
            replayer.publish("/pp/ip/eu", b"".join(eu[i : i + 4]))
            replayer.publish("/pp/ip/us", b"".join(us[i : i + 4]))
        assert [f.raw for f in us_receiver.wait_frames("spartn", len(us))] == us
        time.sleep(0.5)
        assert [f.raw for f in us_receiver.frames_of("spartn")] == us  # nothing of /pp/ip/eu
        assert us_receiver.garbage_bytes == 0
        assert fwd.log().count("mqtt input: subscribed /pp/ip/") == 1  # exactly one correction subscription
        st = fwd.wait_status(lambda s: s["healthy"] is True)
        assert st["last_error"] is None
        body = _metrics(port)
        assert 'pointperfect_forwarder_region_info{region="us",source="position"} 1.0' in body
        assert "pointperfect_forwarder_lband_pmp_frames_total 0.0" in body
    finally:
        replayer.stop()


def test_lband_keys_only_without_a_d9s(tmp_path, broker, receiver, daemons):
    keys = lab_keys()
    creds = credentials(tmp_path, broker=broker, plan="lband", regions=["eu", "us"])
    cfg = forwarder_config(
        tmp_path,
        creds,
        ca_file=str(broker.ca_path),
        output=_serial(receiver),
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


def test_lband_with_a_d9s_tuned_for_the_region_and_relayed(tmp_path, broker, us_receiver, daemons):
    keys, port = lab_keys(), free_port()
    d9s = D9sSim(tmp_path / "ttyD9S", port="UART2", beam_hz=US_HZ, frame_interval=0.2).start()
    try:
        us_receiver.quality = 1
        creds = credentials(tmp_path, broker=broker, plan="lband", regions=["eu", "us"])
        cfg = forwarder_config(
            tmp_path,
            creds,
            ca_file=str(broker.ca_path),
            output=_serial(us_receiver),
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
            assert "pointperfect_forwarder_lband_pmp_frames_total" in _metrics(port)

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
