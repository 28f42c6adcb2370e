"""Unit: the recovery decisions of issue 17. The backoff restarts after a session that delivered data (one rule for
MQTT and NTRIP, in the shared input loop); MQTT is `subscribing` until every SUBACK of the session so far, then
`connected`; the rest of a cut frame is finished only for the same receiver (dropped and counted after a re-plug,
a power cycle or a detected reset)."""

from __future__ import annotations

import random
import threading

from pointperfect_forwarder.backoff import Backoff
from pointperfect_forwarder.config import MqttSettings
from pointperfect_forwarder.framing import SPARTN, UBX, Frame
from pointperfect_forwarder.health import Health, MetricsCollector
from pointperfect_forwarder.inputs import Input
from pointperfect_forwarder.inputs.mqtt import MqttInput
from pointperfect_forwarder.stats import Stats
from pointperfect_forwarder.writer import Writer
from test_writer import RecordingOutput, wait_for

# --- 1. backoff decided from what the session did ---------------------------------------------------------------------


def test_a_session_that_delivered_data_restarts_the_backoff_jittered():
    now = [0.0]
    b = Backoff(1, 60, 60, rng=random.Random(7), clock=lambda: now[0])
    for _ in range(6):
        b.next_delay()  # six failed attempts: the next step is 60 s
    assert b.ceiling() == 60
    b.session_started()
    now[0] += 15
    assert b.session_ended(delivered=True) is True
    delays = []
    for _ in range(200):  # the step starts again at initial, still jittered between half and all of it
        b.session_started()
        now[0] += 15
        b.session_ended(delivered=True)
        delays.append(b.next_delay())
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert max(delays) - min(delays) > 0.3  # a fleet does not reconnect in lockstep


def test_sessions_without_data_keep_doubling_and_a_long_one_resets():
    now = [0.0]
    b = Backoff(1, 60, 60, rng=random.Random(3), clock=lambda: now[0])
    ceilings = []
    for _ in range(8):  # connected, nothing delivered, closed after 15 s (e.g. a broker that drops every session)
        b.session_started()
        now[0] += 15
        assert b.session_ended(delivered=False) is False
        ceilings.append(b.ceiling())
        b.next_delay()
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60]
    b.session_ended(delivered=False)  # a failed connection (no session started) never resets
    assert b.ceiling() == 60
    b.session_started()
    now[0] += 60  # backoff.reset_after: a session that lived that long resets, with or without data
    assert b.session_ended(delivered=False) is True
    assert b.next_delay() <= 1


class _Pipe:
    def __init__(self):
        self.output_ready = threading.Event()
        self.output_ready.set()


class _ScriptedInput(Input):
    """Each session: 'fail' (no connection), 'empty' (connected, nothing), 'data' (connected, one frame) or
    'auth' (credentials rejected); records the backoff step each session started with."""

    kind = "test"

    def __init__(self, script, backoff):
        super().__init__(None, None, Stats("test", "x:1", "file", "/x"), _Pipe(), backoff=backoff, no_data_timeout=30)
        self.script = list(script)
        self.steps: list[float] = []
        self.done = threading.Event()

    def session(self):
        self.steps.append(self.backoff.ceiling())
        if not self.script:
            self.done.set()
            self._stop.wait(5)
            return None
        what = self.script.pop(0)
        if what == "auth":
            self.stats.set_input("auth_failed", "rejected")
            return None
        if what != "fail":
            self.backoff.session_started()
            self.stats.set_input("connected")
        if what == "data":
            self.stats.data_in(SPARTN, 50)
        return None


def test_the_shared_input_loop_applies_the_rule_for_every_input():
    inp = _ScriptedInput(["fail", "fail", "empty", "data", "fail", "data", "data", "auth", "data"], None)
    inp.backoff = Backoff(0.001, 0.064, 60)
    inp.start()
    try:
        assert inp.done.wait(10)
    finally:
        inp.stop()
    # the step each session started with (un-jittered): doubles after failures and empty sessions, back to
    # initial after a session that delivered data; auth_failed jumps to the cap
    assert inp.steps == [0.001, 0.002, 0.004, 0.008, 0.002, 0.004, 0.002, 0.002, 0.064, 0.002]


# --- 2. `connected` means subscribed (MQTT) ---------------------------------------------------------------------------


class _RC:
    def __init__(self, failure=False, name="Granted QoS 0"):
        self.is_failure = failure
        self.name = "Not authorized" if failure else name

    def __str__(self):
        return self.name


class _Client:
    def __init__(self):
        self.subscribed: dict[int, list] = {}

    def subscribe(self, topics, qos=0):
        mid = len(self.subscribed) + 1
        self.subscribed[mid] = topics
        return 0, mid

    def unsubscribe(self, topic):
        pass


class _MqttPipe(_Pipe):
    def __init__(self, topic=None):
        super().__init__()
        self.topic = topic

    def correction_topic(self):
        return self.topic

    def assistnow_full_wanted(self):
        return True

    def new_keys(self, frame):
        pass

    def submit(self, frame, priority=False):
        pass


def _mqtt(topic="/pp/ip/eu", assistnow="/pp/ubx/mga"):
    cfg = MqttSettings("h", 1, "cid", "c", "k", 60, "/pp/ubx/0236/ip", {"eu": "/pp/ip/eu"}, assistnow, None)
    stats = Stats("mqtt", "h:1", "serial", "/dev/x")
    stats.output_state = "open"
    if topic:
        stats.region = {"selected": "eu", "source": "plan", "available": ["eu"], "topic": topic}
    return MqttInput(cfg, None, stats, _MqttPipe(topic), backoff=Backoff(1, 60, 60), no_data_timeout=30), stats


def _suback(mqtt, client, mid, *failures):
    n = len(client.subscribed[mid])
    mqtt._on_subscribe(client, None, mid, [_RC(i in failures) for i in range(n)], None)


def test_mqtt_is_subscribing_until_every_suback_then_connected():
    mqtt, stats = _mqtt()
    health = Health(stats, dict, 30, None)
    client = _Client()
    mqtt._on_connect(client, None, None, _RC(), None)  # CONNACK
    assert stats.input_state == "subscribing" and stats.connected_since is None
    assert client.subscribed == {1: [("/pp/ubx/0236/ip", 0)]}  # the key topic first
    stats.data_in(UBX, 60)  # its retained keys may arrive before the SUBACK
    assert not health.healthy()
    _suback(mqtt, client, 1)
    assert client.subscribed[2] == [("/pp/ubx/mga", 0)] and client.subscribed[3] == [("/pp/ip/eu", 0)]
    assert stats.input_state == "subscribing"
    _suback(mqtt, client, 3)
    assert stats.input_state == "subscribing"  # AssistNow's SUBACK is still due
    _suback(mqtt, client, 2)
    assert stats.input_state == "connected" and stats.connected_since is not None
    assert health.healthy()
    assert health.status()["input"]["state"] == "connected"
    metrics = {m.name: m.samples[0].value for m in MetricsCollector(health).collect() if m.samples}
    assert metrics["pointperfect_forwarder_input_connected"] == 1


def test_a_region_chosen_later_is_subscribing_until_its_suback_and_keeps_connected_since():
    mqtt, stats = _mqtt(topic=None, assistnow=None)
    health = Health(stats, dict, 30, None)
    client = _Client()
    mqtt._on_connect(client, None, None, _RC(), None)
    stats.data_in(UBX, 60)
    _suback(mqtt, client, 1)
    assert stats.input_state == "connected" and list(client.subscribed) == [1]  # no region yet: keys only
    since = stats.connected_since
    # the first fix: the reader thread publishes the region before the input thread subscribes its topic
    stats.region = {"selected": "eu", "source": "position", "available": ["eu"], "topic": "/pp/ip/eu"}
    assert not health.healthy()  # chosen, not subscribed yet
    mqtt.pipeline.topic = "/pp/ip/eu"
    mqtt._follow_region(client)
    assert stats.input_state == "subscribing" and stats.connected_since == since
    assert not health.healthy()
    _suback(mqtt, client, 2)
    assert stats.input_state == "connected" and stats.connected_since == since
    assert health.healthy()


def test_a_refused_correction_subscription_stays_subscribing_and_reconnects():
    mqtt, stats = _mqtt()
    client = _Client()
    mqtt._on_connect(client, None, None, _RC(), None)
    _suback(mqtt, client, 1)
    _suback(mqtt, client, 2, 0)  # AssistNow refused: reported, but corrections can still flow
    assert "subscription refused: /pp/ubx/mga" in stats.input_error
    _suback(mqtt, client, 3, 0)  # the correction topic refused: this session cannot receive its corrections
    assert stats.input_state == "subscribing"
    assert "/pp/ip/eu (Not authorized)" in stats.last_error
    assert mqtt._denied == {"/pp/ip/eu": "Not authorized"}  # the session loop reconnects after no_data_timeout


def test_a_refused_optional_subscription_does_not_hold_connected():
    mqtt, stats = _mqtt()
    client = _Client()
    mqtt._on_connect(client, None, None, _RC(), None)
    for mid, failures in ((1, ()), (2, (0,)), (3, ())):
        _suback(mqtt, client, mid, *failures)
    assert stats.input_state == "connected"
    assert stats.input_error.startswith("subscription refused: /pp/ubx/mga")


# --- 3. a cut frame is finished for the same receiver only ------------------------------------------------------------


class _Node(RecordingOutput):
    """RecordingOutput with a device identity (st_dev, st_ino, st_rdev) and opens that can fail like a missing node."""

    def __init__(self):
        super().__init__()
        self.node = (1, 10, 100)
        self.missing = False

    def open(self):
        self.opens += 1
        if self.missing:
            raise FileNotFoundError(2, "No such file or directory")

    def identity(self):
        return self.node


def _cut_writer(out):
    stats = Stats("mqtt", "x:1", "serial", "/dev/x")
    w = Writer(out, stats, 1 << 20, Backoff(0.01, 0.05, 1), on_open=lambda: w.submit(Frame(UBX, b"KEY"), True))
    out.write_timeout = 0.3
    w.start()
    wait_for(lambda: out.writes == [b"KEY"])
    out.room = 3  # the receiver stops reading after 3 bytes of the next frame
    w.submit(Frame(SPARTN, b"frame-1"))
    return w, stats


def test_a_cut_frame_is_finished_after_a_reopen_of_the_same_node():
    out = _Node()
    w, stats = _cut_writer(out)
    try:
        wait_for(lambda: out.opens >= 2)  # the write timed out: the same node was reopened
        out.room = None
        out.gate.set()
        w.submit(Frame(SPARTN, b"frame-2"))
        wait_for(lambda: out.stream.endswith(b"frame-2"))
        assert out.stream == b"KEYframe-1KEYframe-2" and stats.cut_frames_dropped == 0
    finally:
        w.stop()


def test_a_cut_frame_is_dropped_when_the_node_vanished_meanwhile():
    out = _Node()
    w, stats = _cut_writer(out)
    try:
        out.missing = True  # unplugged: every open fails with ENOENT (the same node number may come back)
        wait_for(lambda: out.opens >= 3)
        out.missing = False
        out.room = None
        out.gate.set()
        wait_for(lambda: stats.output_state == "open" and out.stream.endswith(b"KEY") and out.opens >= 4)
        w.submit(Frame(SPARTN, b"frame-2"))
        wait_for(lambda: out.stream.endswith(b"frame-2"))
        assert out.stream == b"KEYfraKEYframe-2"  # the rest ("me-1") never reaches the new receiver
        assert stats.cut_frames_dropped == 1
    finally:
        w.stop()


def test_a_cut_frame_is_dropped_when_another_node_is_opened():
    out = _Node()
    w, stats = _cut_writer(out)
    try:
        out.node = (1, 11, 100)  # re-plugged between two opens: a new node (the open never failed)
        wait_for(lambda: out.opens >= 2)  # the write timed out: reopened
        out.room = None
        out.gate.set()
        wait_for(lambda: out.stream.endswith(b"KEY"))
        w.submit(Frame(SPARTN, b"frame-2"))
        wait_for(lambda: out.stream.endswith(b"frame-2"))
        assert out.stream == b"KEYfraKEYframe-2" and stats.cut_frames_dropped == 1
    finally:
        w.stop()


def test_a_cut_frame_is_dropped_after_a_receiver_reset():
    out = _Node()
    out.write_timeout = 30  # no reopen: the output stays stalled until the reset
    w, stats = _cut_writer(out)
    out.write_timeout = 30
    try:
        wait_for(lambda: out.stream == b"KEYfra" and w._tail is not None)
        assert w.drop_cut("receiver reset detected (boot banner)") is True
        assert w.drop_cut("again") is False
        out.room = None
        out.gate.set()
        w.submit(Frame(SPARTN, b"frame-2"))
        wait_for(lambda: out.stream.endswith(b"frame-2"))
        assert out.stream == b"KEYfraframe-2" and stats.cut_frames_dropped == 1
        health = Health(stats, dict, 30, None)
        assert health.status()["output"]["cut_frames_dropped"] == 1
        metrics = {m.name: m.samples[0].value for m in MetricsCollector(health).collect() if m.samples}
        assert metrics["pointperfect_forwarder_output_cut_frames_dropped"] == 1
    finally:
        w.stop()


def test_pipeline_drops_the_cut_frame_on_a_detected_reset():
    from pointperfect_forwarder import app  # noqa: PLC0415 - only here

    dropped = []

    class _W:
        def drop_cut(self, reason):
            dropped.append(reason)

        def submit(self, frame, priority=False):
            pass

    p = app.Pipeline.__new__(app.Pipeline)
    p.writer, p._key_frame, p.stats = _W(), None, Stats("mqtt", "x", "serial", "/x")
    p._receiver_reset("boot banner")
    assert dropped == ["receiver reset detected (boot banner)"]
