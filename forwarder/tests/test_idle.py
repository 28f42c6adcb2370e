"""An idle forwarder sleeps (issue 16): each loop wakes for data or its next deadline, not on a periodic tick. The
loops count their turns, and these tests bound the turns per message, across `app`, `inputs`, `outputs`, `health`
and `receiver`."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest
from fwd_helpers import SinkPipeline, wait_until
from pointperfect_forwarder import app, config
from pointperfect_forwarder.app import Forwarder
from pointperfect_forwarder.backoff import Backoff
from pointperfect_forwarder.config import MqttSettings, NtripSettings
from pointperfect_forwarder.health import Health, start_metrics
from pointperfect_forwarder.inputs.mqtt import MqttInput
from pointperfect_forwarder.inputs.ntrip import NtripInput, ProtocolError
from pointperfect_forwarder.outputs import SerialOutput, TcpOutput
from pointperfect_forwarder.receiver import BATCH_MAX, BATCH_MIN, KEY_POLL_INTERVAL, TTY_BUDGET, ReadPace, Receiver
from pointperfect_forwarder.schedule import on_grid
from pointperfect_forwarder.stats import Stats
from pointperfect_forwarder.systemd import Notifier
from pointperfect_sim import frames as F


def test_ntrip_session_wakes_once_per_message_not_on_a_tick():
    cfg = NtripSettings("caster", 2101, False, "NEAR-SPARTN", 2, "user", "pass", 10, 120, None)
    sink = SinkPipeline()
    inp = NtripInput(cfg, None, Stats("ntrip", "c:1", "serial", "/dev/x"), sink, backoff=Backoff(), no_data_timeout=30)
    ours, caster = socket.socketpair()
    ours.settimeout(5)
    errors: list[Exception] = []

    def run():
        try:
            inp._stream(ours, "caster:2101")
        except ProtocolError as exc:
            errors.append(exc)

    reader = threading.Thread(target=run)
    reader.start()
    try:
        assert caster.recv(4096).startswith(b"GET /NEAR-SPARTN ")
        caster.sendall(b"ICY 200 OK\r\n\r\n")
        sent = F.synthetic_spartn(6, size=80)
        for i, frame in enumerate(sent):
            caster.sendall(frame)
            assert wait_until(lambda i=i: len(sink.frames) == i + 1, 5)
            if i == 2:
                time.sleep(2.5)  # silence: a 0.5 s socket timeout would turn 5 times here
        turns = inp.turns
        caster.close()
        reader.join(10)
    finally:
        ours.close()
    assert sink.frames == sent and [str(e) for e in errors] == ["caster closed the connection"]
    assert turns <= len(sent) + 1, turns  # one wait per message (the GGA is due in 10 s, the watchdog in 30 s)


def test_ntrip_stop_ends_the_wait_at_once():
    cfg = NtripSettings("caster", 2101, False, "NEAR-SPARTN", 2, "user", "pass", 10, 120, None)
    inp = NtripInput(
        cfg, None, Stats("ntrip", "c:1", "serial", "/dev/x"), SinkPipeline(), backoff=Backoff(), no_data_timeout=30
    )
    ours, caster = socket.socketpair()
    done = threading.Event()
    threading.Thread(target=lambda: (inp._stream(ours, "c"), done.set()), daemon=True).start()
    try:
        caster.recv(4096)
        caster.sendall(b"ICY 200 OK\r\n\r\n")
        assert wait_until(lambda: inp.turns >= 1, 5)
        began = time.monotonic()
        inp._stop.set()
        inp.wake()
        assert done.wait(2) and time.monotonic() - began < 1.0
    finally:
        ours.close()
        caster.close()


class _PumpClient:
    """What `_pump` uses of paho's external-loop API, on a socket pair."""

    def __init__(self, sock):
        self.sock, self.reads, self.misc = sock, 0, 0

    def socket(self):
        return self.sock

    def want_write(self):
        return False

    def loop_read(self):
        self.reads += 1
        self.sock.recv(4096)
        return 0

    def loop_misc(self):
        self.misc += 1
        return 0


def _mqtt(no_data_timeout: float = 30, keepalive: int = 60) -> MqttInput:
    cfg = MqttSettings("h", 1, "cid", "c", "k", keepalive, "/pp/ubx/0236/ip", {"eu": "/pp/ip/eu"}, None, None)
    return MqttInput(
        cfg,
        None,
        Stats("mqtt", "h:1", "serial", "/dev/x"),
        SinkPipeline(),
        backoff=Backoff(),
        no_data_timeout=no_data_timeout,
    )


def test_mqtt_pump_sleeps_until_traffic_or_a_wake_up():
    mqtt = _mqtt()
    ours, broker = socket.socketpair()
    client = _PumpClient(ours)
    try:
        threading.Timer(0.3, broker.sendall, [b"\x30\x00"]).start()
        began = time.monotonic()
        assert mqtt._pump(client, 10.0) == 0
        assert client.reads == 1 and client.misc == 1 and time.monotonic() - began < 5
        threading.Timer(0.3, mqtt.wake).start()  # a region change or a stop
        began = time.monotonic()
        assert mqtt._pump(client, 10.0) == 0
        assert client.reads == 1 and time.monotonic() - began < 5  # woken without traffic: nothing read
        assert mqtt.turns == 2
    finally:
        ours.close()
        broker.close()


def test_mqtt_wait_time_is_the_next_deadline():
    mqtt = _mqtt(no_data_timeout=30, keepalive=60)
    started = time.monotonic()
    assert mqtt._wait_time(started) == pytest.approx(15.0, abs=0.1)  # before CONNACK: keepalive/4 (CONNACK in 20 s)
    assert mqtt._wait_time(started - 18) == pytest.approx(2.0, abs=0.1)  # CONNACK due in 2 s
    mqtt._connected = True
    mqtt._pending = {1: [("/pp/ip/eu", True)]}
    mqtt._subscribing_since = time.monotonic() - 25
    assert mqtt._wait_time(started) == pytest.approx(5.0, abs=0.1)  # the SUBACK watchdog
    mqtt._pending.clear()
    mqtt._corrections, mqtt._corrections_since = "/pp/ip/eu", time.monotonic()
    assert mqtt._wait_time(started) == pytest.approx(15.0, abs=0.1)  # keepalive/4 before the no-data watchdog
    mqtt._corrections_since = time.monotonic() - 28
    assert mqtt._wait_time(started) == pytest.approx(2.0, abs=0.1)  # no data for 28 of 30 s


def test_receiver_next_due_follows_valset_and_key_polls():
    clock = [0.0]
    rx = Receiver(
        Stats("mqtt", "h:1", "serial", "/dev/x"),
        lambda f: None,
        lambda why: None,
        configure=True,
        have_keys=lambda: True,
        clock=lambda: clock[0],
    )
    assert rx.next_due() == 0.0  # the VALSET is pending: due now
    rx.tick()
    assert rx.next_due() == pytest.approx(2.0)  # the ACK timeout
    rx.valset.ack(True)
    assert rx.next_due() == pytest.approx(KEY_POLL_INTERVAL)  # applied: only the key poll is left
    woken = []
    rx._wake = lambda: woken.append(1)
    rx.request_config()  # e.g. from the writer thread after a reopen: the reader must not sleep through it
    assert woken == [1] and rx.next_due() == 0.0


def test_output_read_sleeps_until_data_and_ends_on_wake():
    server = socket.create_server(("127.0.0.1", 0))
    out = TcpOutput("127.0.0.1", server.getsockname()[1])
    try:
        out.open()
        peer, _addr = server.accept()
        threading.Timer(0.2, out.wake).start()
        began = time.monotonic()
        assert out.read(30) == b"" and time.monotonic() - began < 5
        threading.Timer(0.2, peer.sendall, [b"$GNGGA"]).start()
        assert out.read(30) == b"$GNGGA"
        peer.close()
    finally:
        out.close()
        server.close()


def test_metrics_server_sleeps_between_scrapes_and_stops_at_once():
    health = Health(Stats("mqtt", "h:1", "serial", "/dev/x"), dict, 30, None)
    server, _port = start_metrics(health, "127.0.0.1", 0)
    turns = []
    server.service_actions = lambda: turns.append(1)  # runs after every wake-up of serve_forever
    time.sleep(1.6)  # prometheus_client's own server polls every 0.5 s
    began = time.monotonic()
    server.shutdown()
    server.server_close()
    assert time.monotonic() - began < 2
    assert len(turns) <= 1, turns  # the wake-up that stopped it


def _settings(tmp_path):
    creds = {
        "format": 1,
        "ntrip": {"host": "127.0.0.1", "tls_port": 9, "mountpoint": "M", "username": "u", "password": "p"},
    }
    (tmp_path / "credentials.json").write_text(json.dumps(creds))
    cfg = {
        "credentials_file": str(tmp_path / "credentials.json"),
        "input": "ntrip",  # no position: it waits for one and opens no socket
        "output": {"type": "file", "path": str(tmp_path / "out.bin")},
        "health": {"status_file": str(tmp_path / "status.json"), "metrics_port": None},
    }
    (tmp_path / "forwarder.json").write_text(json.dumps(cfg))
    return config.load(str(tmp_path / "forwarder.json"))


def test_main_loop_wakes_for_its_jobs_not_every_second(tmp_path):
    fwd = Forwarder(_settings(tmp_path), notifier=Notifier({}))
    runner = threading.Thread(target=fwd.run)
    runner.start()
    try:
        assert wait_until(lambda: (tmp_path / "status.json").exists(), 5)
        time.sleep(4.5)
        turns = fwd.turns
    finally:
        fwd.request_stop()
        runner.join(10)
    assert not runner.is_alive()
    # the status write at start and on the start's changes (the heartbeat and the credentials check are 10 s); a 1 s
    # tick would have turned 5-6 times
    assert 2 <= turns <= 4, turns


def test_status_file_is_written_on_changes_and_as_a_heartbeat(tmp_path):
    fwd = Forwarder(_settings(tmp_path), notifier=Notifier({}))
    runner = threading.Thread(target=fwd.run)
    runner.start()
    status = tmp_path / "status.json"
    try:
        assert wait_until(lambda: status.exists() and json.loads(status.read_text())["input"]["state"] != "starting", 5)
        time.sleep(1)  # the start's changes are written
        started = status.stat().st_mtime_ns
        assert wait_until(lambda: status.stat().st_mtime_ns != started, app.STATUS_HEARTBEAT + 1)  # a heartbeat
        first = status.stat().st_mtime_ns
        time.sleep(3)  # nothing changes: no write (the old rule wrote every 2 s)
        assert status.stat().st_mtime_ns == first
        fwd.pipeline.stats.input_bytes += 1  # a counter: it waits for the heartbeat
        time.sleep(0.8)
        assert status.stat().st_mtime_ns == first
        fwd.pipeline.stats.set_input("backoff", "refused")  # a state a reader judges: written at once
        assert wait_until(lambda: json.loads(status.read_text())["input"]["state"] == "backoff", 1.5)
        assert json.loads(status.read_text())["input"]["bytes"] == 1
        mtime = status.stat().st_mtime_ns
        assert wait_until(lambda: status.stat().st_mtime_ns != mtime, app.STATUS_HEARTBEAT + 1)  # the heartbeat
    finally:
        fwd.request_stop()
        runner.join(10)
    assert not runner.is_alive()


def test_stats_report_changes_of_watched_fields_only():
    stats = Stats("mqtt", "h:1", "serial", "/dev/x")
    calls = []
    stats.on_change = lambda: calls.append(1)
    stats.output_state = "closed"  # the same value: no change
    stats.input_bytes += 100  # a counter
    stats.data_out("spartn", 10)
    assert calls == []
    stats.output_state = "open"
    stats.region = {**stats.region, "selected": "eu"}
    stats.set_input("connected")
    stats.error("boom")
    assert len(calls) == 4
    stats.quiet_after = 30
    stats.data_in("spartn", 10)  # the first data
    assert len(calls) == 5
    stats.data_in("spartn", 10)  # data flowing: no change
    assert len(calls) == 5
    stats.last_data_mono -= 31  # after a silence longer than the no-data timeout: healthy again, a change
    stats.data_in("spartn", 10)
    assert len(calls) == 6


def test_healthy_for_counts_down_the_no_data_timeout():
    stats = Stats("mqtt", "h:1", "serial", "/dev/x")
    health = Health(stats, dict, 30, None)
    assert health.healthy_for() is None  # not healthy: nothing to count down
    stats.output_state = "open"
    stats.set_input("connected")
    assert health.healthy_for() == pytest.approx(30, abs=1)
    stats.data_in("spartn", 10)
    stats.last_data_mono -= 25
    assert health.healthy_for() == pytest.approx(5, abs=1)
    assert stats.quiet_after == 30


def test_output_read_in_batches_sleeps_through_data_until_its_deadline():
    server = socket.create_server(("127.0.0.1", 0))
    out = TcpOutput("127.0.0.1", server.getsockname()[1])
    try:
        out.open()
        peer, _addr = server.accept()
        threading.Timer(0.1, peer.sendall, [b"$GNGGA,1"]).start()
        threading.Timer(0.3, peer.sendall, [b"$GNGGA,2"]).start()
        began = time.monotonic()
        assert out.read(1.0, prompt=False) == b"$GNGGA,1$GNGGA,2"  # both sentences, in one wake
        assert time.monotonic() - began >= 0.9
        threading.Timer(0.2, out.wake).start()  # a VALSET requested: the batch wait ends at once
        began = time.monotonic()
        assert out.read(30, prompt=False) == b"" and time.monotonic() - began < 5
        peer.close()
    finally:
        out.close()
        server.close()


def test_read_pace_keeps_the_tty_buffer_from_filling():
    clock = [0.0]
    pace = ReadPace(lambda: clock[0])
    assert pace.wait() == BATCH_MAX  # an idle receiver: the longest batch
    clock[0] = 5.0
    pace.read(400)  # 80 B/s of NMEA: still the longest batch, ending on the grid the main loop's heartbeat uses
    assert pace.wait() == pytest.approx(on_grid(5.0, BATCH_MAX)) == pytest.approx(BATCH_MAX - 5.0)
    clock[0] = 10.0
    pace.read(4096)  # ~820 B/s: the buffer is reached sooner
    assert pace.wait() == pytest.approx(5.0 * TTY_BUDGET / 4096)
    clock[0] = 12.5
    pace.read(409600)  # a flood: read again soon, never busy
    assert pace.wait() == pytest.approx(BATCH_MIN)
    clock[0] = 13.0
    pace.read(0)
    assert pace.wait() == pytest.approx(2 * BATCH_MAX - 13.0)


def test_reader_reads_promptly_only_while_something_waits_for_the_receiver():
    clock = [0.0]
    rx = Receiver(Stats("mqtt", "h:1", "serial", "/dev/x"), lambda f: None, lambda why: None, configure=True)
    assert rx.awaiting_ack()  # the VALSET is pending: its ACK is read as it comes
    rx.valset.ack(True)
    assert not rx.awaiting_ack()
    rx.request_config()
    assert rx.awaiting_ack()
    assert not Receiver(
        Stats("mqtt", "h:1", "serial", "/dev/x"),
        lambda f: None,
        lambda why: None,
        configure=False,
        clock=lambda: clock[0],
    ).awaiting_ack()


def test_serial_read_in_batches_with_nothing_there_is_no_unplug():
    master, slave = os.openpty()
    out = SerialOutput(os.ttyname(slave), 38400)
    try:
        out.open()
        assert out.read(0.2, prompt=False) == b""  # an empty tty read gives b"" too: no unplug
        os.write(master, b"$GNGGA,1\r\n")
        assert out.read(0.3, prompt=False) == b"$GNGGA,1\r\n"
    finally:
        out.close()
        os.close(master)
        os.close(slave)
