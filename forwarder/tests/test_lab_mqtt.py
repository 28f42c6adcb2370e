"""Integration: MQTT (real Mosquitto, mutual TLS) -> forwarder -> receiver simulator on a pty."""

from __future__ import annotations

import threading
import time

import pytest
from fwd_helpers import credentials, forwarder_config, lab_keys
from pointperfect_sim import frames as F
from pointperfect_sim.replay import MqttReplayer

pytestmark = pytest.mark.timeout(90)


def _setup(tmp_path, broker, receiver, keys=None, **sections):
    creds = credentials(tmp_path, broker=broker, keys=keys)
    sections.setdefault("output", {"type": "serial", "device": receiver.device_path, "baudrate": 115200})
    return forwarder_config(tmp_path, creds, ca_file=str(broker.ca_path), **sections)


def test_frames_delivered_byte_exact_keys_first(tmp_path, broker, receiver, daemons):
    keys = lab_keys()
    replayer = MqttReplayer(broker).connect()
    try:
        key_frame = replayer.publish_keys(keys)  # retained, like the service
        fwd = daemons(_setup(tmp_path, broker, receiver, keys=None))
        fwd.wait_status(lambda s: s["input"]["state"] == "connected")
        assert receiver.wait_frames("ubx", 1)
        sent = F.synthetic_spartn(60)
        for i in range(0, len(sent), 3):  # several SPARTN messages per payload, as the service does
            replayer.publish("corrections", b"".join(sent[i : i + 3]))
        got = receiver.wait_frames("spartn", len(sent))
        assert [f.raw for f in got] == sent
        assert receiver.garbage_bytes == 0
        order = [f.kind for f in receiver.frames]
        first_key = next(i for i, f in enumerate(receiver.frames) if f.raw == key_frame)
        assert first_key < order.index("spartn")
        assert receiver.wait_for(lambda r: r.keys and r.keys[0]["value"] == keys["current"]["value"])
        st = fwd.wait_status(lambda s: s["output"]["frames"] >= len(sent) + 1)
        assert st["streams"]["spartn"] == {"frames": len(sent), "bytes": sum(map(len, sent))}
        assert st["healthy"] is True
        log = fwd.log()  # `connected` came after the SUBACKs, so nothing published after it was missed
        assert log.index("subscribing") < log.index("subscriptions acknowledged: connected")
    finally:
        replayer.stop()


def _mga(n: int) -> list[bytes]:
    """AssistNow-like UBX-MGA frames (class 0x13) of varying size."""
    return [F.ubx_frame(0x13, 0x00, bytes([i % 256]) * (20 + i % 50)) for i in range(n)]


def test_interleaved_topics_never_split_frames(tmp_path, broker, receiver, daemons):

    keys = lab_keys()
    replayer = MqttReplayer(broker).connect()
    try:
        replayer.publish_keys(keys)
        mga_full = _mga(30)
        replayer.publish("mga", b"".join(mga_full), retain=True)
        fwd = daemons(_setup(tmp_path, broker, receiver, mqtt={"assistnow": True}))
        fwd.wait_status(lambda s: s["input"]["state"] == "connected")
        assert receiver.wait_frames("ubx", 1 + len(mga_full))
        spartn = F.synthetic_spartn(200, size=300)
        updates = _mga(100)

        def corrections():
            for i in range(0, len(spartn), 4):
                replayer.publish("corrections", b"".join(spartn[i : i + 4]))

        def assist():
            for i in range(0, len(updates), 2):
                replayer.publish("/pp/ubx/mga/updates", b"".join(updates[i : i + 2]))
                replayer.publish("keys", F.spartnkey_frame(keys))

        threads = [threading.Thread(target=corrections), threading.Thread(target=assist)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = receiver.wait_frames("spartn", len(spartn), timeout=20)
        assert [f.raw for f in got] == spartn
        # the topics are not ordered against each other: the last updates may still be on their way
        receiver.wait_for(lambda r: sum(f.raw[2] == 0x13 for f in r.frames_of("ubx")) >= len(mga_full + updates), 20)
        ubx = [f.raw for f in receiver.frames_of("ubx")]
        assert [f for f in ubx if f[2] == 0x13] == mga_full + updates  # full set once, then updates, in order
        assert receiver.garbage_bytes == 0  # nothing was spliced into anything else
        st = fwd.wait_status(lambda s: s["output"]["frames"] >= len(spartn) + len(updates) + len(mga_full))
        assert st["output"]["dropped_frames"] == 0
    finally:
        replayer.stop()


def test_receiver_configured_and_reset_recovered(tmp_path, broker, receiver, daemons):
    keys = lab_keys()
    fwd = daemons(_setup(tmp_path, broker, receiver, keys=keys))
    st = fwd.wait_status(lambda s: s["receiver"]["config_state"] == "applied")
    assert receiver.config == {0x20A70001: 0, 0x10770005: 1}
    assert receiver.wait_for(
        lambda r: [k["value"] for k in r.keys] == [keys["current"]["value"], keys["next"]["value"]]
    )
    assert st["keys"]["current"]["valid"] is True
    loads = receiver.key_loads
    receiver.reset()  # power cycle: keys and RAM config gone, boot banner printed (re-send may come at once)
    st = fwd.wait_status(lambda s: s["receiver"]["resets_detected"] >= 1 and s["receiver"]["config_state"] == "applied")
    assert receiver.wait_for(lambda r: r.key_loads > loads and len(r.keys) == 2)
    assert receiver.wait_for(lambda r: r.config == {0x20A70001: 0, 0x10770005: 1})  # the status may lead the ACK
    assert "reset detected" in fwd.log()


def test_reconnect_after_broker_restart(tmp_path, broker, receiver, daemons):
    fwd = daemons(_setup(tmp_path, broker, receiver, keys=lab_keys()))
    fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    broker.restart()
    st = fwd.wait_status(lambda s: s["input"]["reconnects"] >= 1 and s["input"]["state"] == "connected")
    assert fwd.proc.poll() is None
    replayer = MqttReplayer(broker).connect()
    try:
        sent = F.synthetic_spartn(10)
        replayer.publish("corrections", b"".join(sent))
        got = receiver.wait_frames("spartn", len(sent))
        assert [f.raw for f in got] == sent
    finally:
        replayer.stop()
    assert st["input"]["last_error"]


def test_watchdog_reconnects_silent_broker(tmp_path, broker, receiver, daemons):
    fwd = daemons(_setup(tmp_path, broker, receiver, keys=lab_keys(), watchdog={"no_data_timeout": 1.5}))
    fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    st = fwd.wait_status(lambda s: s["input"]["reconnects"] >= 2, timeout=20)
    assert "no data for" in st["input"]["last_error"]
    assert "no data for" in fwd.log()
    assert st["healthy"] is False or st["input"]["state"] == "connected"


def test_serial_port_unplug_and_return(tmp_path, broker, receiver, daemons):
    keys = lab_keys()
    replayer = MqttReplayer(broker).connect()
    try:
        fwd = daemons(_setup(tmp_path, broker, receiver, keys=keys))
        fwd.wait_status(lambda s: s["input"]["state"] == "connected" and s["receiver"]["config_state"] == "applied")
        receiver.unplug()
        fwd.wait_status(lambda s: s["output"]["state"] == "closed")
        lost = F.synthetic_spartn(5)
        replayer.publish("corrections", b"".join(lost))  # queued (bounded) while the port is gone
        time.sleep(1)
        receiver.replug()
        st = fwd.wait_status(lambda s: s["output"]["state"] == "open" and s["receiver"]["config_state"] == "applied")
        assert receiver.wait_for(lambda r: len(r.keys) == 2)  # a re-plugged receiver gets its keys again
        sent = F.synthetic_spartn(10, size=80)
        replayer.publish("corrections", b"".join(sent))
        got = [f.raw for f in receiver.wait_frames("spartn", len(lost) + len(sent))]
        assert got[-len(sent) :] == sent
        assert got[: len(lost)] == lost  # what was queued during the outage is delivered whole after the return
        assert receiver.garbage_bytes == 0
        assert fwd.proc.poll() is None
        assert st["input"]["state"] == "connected"
    finally:
        replayer.stop()
