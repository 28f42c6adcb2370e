"""inputs/mqtt.py: one correction topic that follows the region, the L-band topics, a backlog read in one turn
submitted together, the bulk packet reader against paho's own; in the lab (Mosquitto, mutual TLS, a receiver
simulator): frames byte-exact and keys first, topics interleaved, reconnects, watchdog."""

from __future__ import annotations

import socket
import threading

import paho.mqtt.client as paho
import pytest
from fwd_helpers import credentials, forwarder_config, lab_keys
from paho.mqtt import __version__ as paho_version
from pointperfect_forwarder.backoff import Backoff
from pointperfect_forwarder.config import MqttSettings
from pointperfect_forwarder.framing import Frame
from pointperfect_forwarder.inputs.mqtt import BulkReadClient, MqttInput
from pointperfect_forwarder.stats import Stats
from pointperfect_sim import frames as F
from pointperfect_sim.replay import MqttReplayer
from test_outputs import serial_output

ALL = ["au", "eu", "jp", "kr", "us"]


class FakeClient:
    def __init__(self):
        self.calls: list[tuple] = []

    def subscribe(self, topic, qos=0):
        self.calls.append(("subscribe", topic))
        return 0, len(self.calls)

    def unsubscribe(self, topic):
        self.calls.append(("unsubscribe", topic))


class FakePipeline:
    def __init__(self):
        self.topic: str | None = None
        self.submitted: list[Frame] = []
        self.freqs: list[bytes] = []
        self.calls: list[tuple] = []  # submit, submit_many and new_keys in their order

    def submit(self, frame, priority=False):
        self.submitted.append(frame)
        self.calls.append(("submit", frame.data))

    def submit_many(self, frames):
        self.submitted.extend(frames)
        self.calls.append(("submit_many", [f.data for f in frames]))

    def new_keys(self, frame):
        self.calls.append(("new_keys", frame.data))

    def correction_topic(self):
        return self.topic

    def frequencies(self, payload):
        self.freqs.append(payload)

    def assistnow_full_wanted(self):
        return True


class Msg:
    def __init__(self, topic, payload):
        self.topic, self.payload = topic, payload


def test_mqtt_input_follows_the_region_with_one_correction_topic():
    cfg = MqttSettings("h", 1, "cid", "c", "k", 60, "/pp/ubx/0236/ip", {r: f"/pp/ip/{r}" for r in ALL}, None, None)
    pipe, client = FakePipeline(), FakeClient()
    mqtt = MqttInput(
        cfg, None, Stats("mqtt", "h:1", "serial", "/dev/x"), pipe, backoff=Backoff(1, 2, 5), no_data_timeout=30
    )
    mqtt._subscribe_rest(client)  # after the key topic's SUBACK
    assert client.calls == []  # no region yet: no correction topic
    pipe.topic = "/pp/ip/us"
    mqtt._follow_region(client)
    mqtt._follow_region(client)
    assert client.calls == [("subscribe", [("/pp/ip/us", 0)])]
    us, eu = F.synthetic_spartn(3), F.synthetic_spartn(3)
    mqtt._on_message(client, None, Msg("/pp/ip/us", us[0] + us[1][:10]))  # the second frame is cut here
    pipe.topic = "/pp/ip/eu"  # the gateway moved
    mqtt._follow_region(client)
    assert client.calls[1:] == [("unsubscribe", "/pp/ip/us"), ("subscribe", [("/pp/ip/eu", 0)])]
    mqtt._on_message(client, None, Msg("/pp/ip/us", us[1][10:] + us[2]))  # in flight from the old topic: dropped
    mqtt._on_message(client, None, Msg("/pp/ip/eu", b"".join(eu)))
    assert [f.data for f in pipe.submitted] == [us[0], *eu]


def test_mqtt_input_lband_subscribes_frequencies_and_no_corrections():
    cfg = MqttSettings("h", 1, "cid", "c", "k", 60, "/pp/ubx/0236/Lb", {}, None, "/pp/frequencies/Lb")
    pipe, client = FakePipeline(), FakeClient()
    mqtt = MqttInput(
        cfg, None, Stats("mqtt", "h:1", "serial", "/dev/x"), pipe, backoff=Backoff(1, 2, 5), no_data_timeout=30
    )
    mqtt._subscribe_rest(client)
    assert client.calls == [("subscribe", [("/pp/frequencies/Lb", 0)])]
    payload = F.frequencies_payload({"us": "1556.29"})
    mqtt._on_message(client, None, Msg("/pp/frequencies/Lb", payload))
    assert pipe.freqs == [payload] and pipe.submitted == []


class BacklogClient(FakeClient):
    """paho's external-loop API on a socket pair: each loop_read hands one queued message to the input."""

    def __init__(self, mqtt, sock, messages):
        super().__init__()
        self.mqtt, self.sock, self.messages = mqtt, sock, list(messages)

    def socket(self):
        return self.sock

    def want_write(self):
        return False

    def loop_read(self):
        if self.messages:
            self.mqtt._on_message(self, None, self.messages.pop(0))
        return 0

    def loop_misc(self):
        return 0


def test_a_backlog_read_in_one_turn_is_submitted_together_after_the_first_message():
    cfg = MqttSettings("h", 1, "cid", "c", "k", 60, "/pp/ubx/0236/ip", {"eu": "/pp/ip/eu"}, None, None)
    pipe = FakePipeline()
    pipe.topic = "/pp/ip/eu"
    mqtt = MqttInput(
        cfg, None, Stats("mqtt", "h:1", "serial", "/dev/x"), pipe, backoff=Backoff(1, 2, 5), no_data_timeout=30
    )
    mqtt._follow_region(FakeClient())
    frames, key = F.synthetic_spartn(6), F.ubx_frame(0x02, 0x36, bytes(12))
    messages = [Msg("/pp/ip/eu", f) for f in frames[:4]]
    messages += [Msg("/pp/ubx/0236/ip", key), Msg("/pp/ip/eu", frames[4] + frames[5])]
    ours, broker = socket.socketpair()
    try:
        broker.send(b"x")  # readable: one turn reads on while messages come
        assert mqtt._pump(BacklogClient(mqtt, ours, messages), 5.0) == 0
    finally:
        ours.close()
        broker.close()
    assert pipe.calls[0] == ("submit", frames[0])  # the message that woke the input goes out at once
    assert pipe.calls[1] == ("submit_many", frames[1:4])  # the backlog behind it in one go, before the keys
    assert pipe.calls[2] == ("new_keys", key)
    assert pipe.calls[3:] == [("submit_many", frames[4:6])]
    assert [f.data for f in pipe.submitted] == frames  # every frame once, in order
    assert mqtt._batch is None  # outside a turn, a message is submitted at once (as above)


def _publish(topic: bytes, payload: bytes, flags: int = 0, mid: bytes = b"") -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + mid + payload
    size, length = len(body), b""
    while True:
        size, digit = size >> 7, size & 0x7F
        length += bytes([digit | (0x80 if size else 0)])
        if not size:
            return bytes([0x30 | flags]) + length + body


def _reader(client_class):
    """A client of `client_class` on one end of a socket pair (as if connected); returns it, the broker's end and
    what its callbacks saw."""
    seen: list = []
    client = client_class(paho.CallbackAPIVersion.VERSION2, client_id="cid", protocol=paho.MQTTv311)
    client.on_message = lambda c, u, m: seen.append(("message", m.topic, m.payload, m.qos if hasattr(m, "qos") else 0))
    client.on_subscribe = lambda c, u, mid, codes, props: seen.append(("suback", mid, [int(x.value) for x in codes]))
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    client._sock = ours
    return client, broker, seen


def test_paho_is_the_version_the_bulk_reader_was_written_against():
    assert paho_version == "2.2.0"  # BulkReadClient uses its internals: review it before a bump


@pytest.mark.parametrize("client_class", [paho.Client, BulkReadClient])
def test_bulk_reader_sees_what_paho_sees(client_class):
    client, broker, seen = _reader(client_class)
    big = bytes(range(256)) * 3  # a two-byte remaining length
    stream = (
        _publish(b"/pp/ip/eu", b"one")
        + bytes([0x90, 0x03, 0x00, 0x07, 0x00])  # SUBACK of mid 7: paho's own handler
        + _publish(b"/pp/ubx/0236/ip", big, flags=0x01)  # retained
        + _publish(b"/pp/ip/eu", b"qos1", flags=0x02, mid=b"\x00\x05")  # QoS 1: paho's handler, which acks it
        + _publish(b"/pp/ip/eu", b"two")
    )
    try:
        sent = 0
        for cut in (5, 40, len(stream) - 3, len(stream)):  # packets cut anywhere across reads
            broker.sendall(stream[sent:cut])
            sent = cut
            for _ in range(8):  # paho reads (at most) one packet per call, the bulk reader all that is there
                assert client.loop_read() == paho.MQTT_ERR_SUCCESS
        assert seen == [
            ("message", "/pp/ip/eu", b"one", 0),
            ("suback", 7, [0]),
            ("message", "/pp/ubx/0236/ip", big, 0),
            ("message", "/pp/ip/eu", b"qos1", 1),
            ("message", "/pp/ip/eu", b"two", 0),
        ]
        assert broker.recv(16) == bytes([0x40, 0x02, 0x00, 0x05])  # the PUBACK of the QoS 1 message
    finally:
        broker.close()
        client._sock.close()


def test_bulk_reader_handles_all_that_one_read_brought():
    client, broker, seen = _reader(BulkReadClient)
    try:
        broker.sendall(b"".join(_publish(b"/pp/ip/eu", b"%d" % i) for i in range(50)))
        assert client.loop_read() == paho.MQTT_ERR_SUCCESS
        assert [m[2] for m in seen] == [b"%d" % i for i in range(50)]
    finally:
        broker.close()
        client._sock.close()


def test_bulk_reader_drops_a_partial_packet_on_reconnect(monkeypatch):
    client, broker, seen = _reader(BulkReadClient)
    try:
        broker.sendall(_publish(b"/pp/ip/eu", b"cut")[:6])
        assert client.loop_read() == paho.MQTT_ERR_SUCCESS and seen == []
        monkeypatch.setattr(paho.Client, "reconnect", lambda self: paho.MQTT_ERR_SUCCESS)  # no broker here
        client.reconnect()
        broker.sendall(_publish(b"/pp/ip/eu", b"new"))
        assert client.loop_read() == paho.MQTT_ERR_SUCCESS
        assert seen == [("message", "/pp/ip/eu", b"new", 0)]
    finally:
        broker.close()
        client._sock.close()


@pytest.mark.parametrize("client_class", [paho.Client, BulkReadClient])
def test_bulk_reader_refuses_a_remaining_length_of_five_bytes_as_paho(client_class):
    client, broker, seen = _reader(client_class)
    try:
        broker.sendall(bytes([0x30, 0x80, 0x80, 0x80, 0x80, 0x01]) + b"x" * 16)
        rcs = {client._packet_read() for _ in range(5)}
        assert paho.MQTT_ERR_PROTOCOL in rcs and seen == []
    finally:
        broker.close()
        client._sock.close()


# --- lab: the daemon, Mosquitto and a receiver simulator --------------------------------------------------------------


def mqtt_config(tmp_path, broker, receiver, keys=None, **sections):
    """forwarder.json for the lab broker (credentials with `keys`), writing to `receiver`; `sections` merge."""
    creds = credentials(tmp_path, broker=broker, keys=keys)
    sections.setdefault("output", serial_output(receiver))
    return forwarder_config(tmp_path, creds, ca_file=str(broker.ca_path), **sections)


@pytest.mark.timeout(90)
def test_frames_delivered_byte_exact_keys_first(tmp_path, broker, receiver, daemons):
    keys = lab_keys()
    replayer = MqttReplayer(broker).connect()
    try:
        key_frame = replayer.publish_keys(keys)  # retained, like the service
        fwd = daemons(mqtt_config(tmp_path, broker, receiver, keys=None))
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


@pytest.mark.timeout(90)
def test_interleaved_topics_never_split_frames(tmp_path, broker, receiver, daemons):

    keys = lab_keys()
    replayer = MqttReplayer(broker).connect()
    try:
        replayer.publish_keys(keys)
        mga_full = _mga(30)
        replayer.publish("mga", b"".join(mga_full), retain=True)
        fwd = daemons(mqtt_config(tmp_path, broker, receiver, mqtt={"assistnow": True}))
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


@pytest.mark.timeout(90)
def test_reconnect_after_broker_restart(tmp_path, broker, receiver, daemons):
    fwd = daemons(mqtt_config(tmp_path, broker, receiver, keys=lab_keys()))
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


@pytest.mark.timeout(90)
def test_watchdog_reconnects_silent_broker(tmp_path, broker, receiver, daemons):
    fwd = daemons(mqtt_config(tmp_path, broker, receiver, keys=lab_keys(), watchdog={"no_data_timeout": 1.5}))
    fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    st = fwd.wait_status(lambda s: s["input"]["reconnects"] >= 2, timeout=20)
    assert "no data for" in st["input"]["last_error"]
    assert "no data for" in fwd.log()
    assert st["healthy"] is False or st["input"]["state"] == "connected"
