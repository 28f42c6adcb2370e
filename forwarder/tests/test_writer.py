"""writer.py: keys before corrections, no frame ever spliced, bounded queue, reopen, cut frames, stalls."""

from __future__ import annotations

import threading
import time

import pytest
from fwd_helpers import lab_keys
from pointperfect_forwarder import writer as writer_mod
from pointperfect_forwarder.backoff import Backoff
from pointperfect_forwarder.framing import Frame
from pointperfect_forwarder.outputs import Output
from pointperfect_forwarder.stats import Stats
from pointperfect_forwarder.writer import Writer
from pointperfect_sim import frames as F
from pointperfect_sim.replay import MqttReplayer
from test_inputs_mqtt import mqtt_config


class RecordingOutput(Output):
    """In-memory output: `gate` cleared = full (writes take nothing), `room` = bytes it takes before it is full."""

    kind = "test"
    write_timeout = 5.0

    def __init__(self, fail_first_writes: int = 0, fail_opens: int = 0):
        super().__init__("memory")
        self.writes: list[bytes] = []
        self.threads: list[str] = []
        self.opens = 0
        self.fail_writes = fail_first_writes
        self.fail_opens = fail_opens
        self.room: int | None = None
        self.gate = threading.Event()
        self.gate.set()

    def open(self):
        self.opens += 1
        if self.fail_opens:
            self.fail_opens -= 1
            raise FileNotFoundError(2, "No such file or directory")

    def write_some(self, data):
        if self.fail_writes:
            self.fail_writes -= 1
            raise OSError(5, "Input/output error")
        if not self.gate.is_set():
            return 0
        take = len(data) if self.room is None else min(len(data), self.room)
        if self.room is not None:
            self.room -= take
            if not self.room:
                self.gate.clear()
        if take:
            self.writes.append(bytes(data[:take]))
            self.threads.append(threading.current_thread().name)
        return take

    def wait_writable(self, timeout):
        return self.gate.wait(timeout)

    def close(self):
        pass

    @property
    def stream(self) -> bytes:
        return b"".join(self.writes)


def _writer(out, queue_bytes=1 << 20, on_open=None):
    stats = Stats("mqtt", "x:1", "test", "memory")
    return Writer(out, stats, queue_bytes, Backoff(0.01, 0.05, 1), on_open=on_open), stats


def wait_for(pred, timeout=5.0):
    """Poll until `pred()` holds; the test fails after `timeout` s (test_recovery.py uses it too)."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_writer_writes_keys_before_queued_corrections():
    out = RecordingOutput()
    w, _ = _writer(out)
    out.gate.clear()  # output busy: everything queues
    w.start()
    try:
        wait_for(w.opened.is_set)
        w.submit(Frame("spartn", b"c0"))
        wait_for(lambda: w.queued_bytes() == 0)  # c0 is in the writer thread, waiting on the gate
        for i in range(1, 4):
            w.submit(Frame("spartn", b"c%d" % i))
        w.submit(Frame("ubx", b"KEY"), priority=True)
        out.gate.set()
        wait_for(lambda: len(out.writes) == 5)
        assert out.writes == [b"c0", b"KEY", b"c1", b"c2", b"c3"]
    finally:
        w.stop()


def test_writer_never_splices_frames_from_concurrent_producers():
    out = RecordingOutput()
    w, stats = _writer(out)
    w.start()
    frames = {name: [bytes([k]) * (10 + j) for j in range(300)] for k, name in enumerate(("a", "b", "c"), 1)}

    def produce(name):
        for data in frames[name]:
            w.submit(Frame("spartn", data), priority=name == "c")

    threads = [threading.Thread(target=produce, args=(n,)) for n in frames]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_for(lambda: len(out.writes) == 900)
        assert all(len(set(chunk)) == 1 for chunk in out.writes)  # one write = one whole frame
        for name, k in (("a", 1), ("b", 2), ("c", 3)):
            assert [c for c in out.writes if c[0] == k] == frames[name]  # per-source order kept
        assert stats.output_frames == 900 and stats.dropped_frames == 0
    finally:
        w.stop()


def test_bounded_queue_drops_oldest_and_counts():
    out = RecordingOutput()
    w, stats = _writer(out, queue_bytes=1000)
    out.gate.clear()
    w.start()
    try:
        wait_for(w.opened.is_set)
        w.submit(Frame("spartn", b"x" * 10))
        wait_for(lambda: w.queued_bytes() == 0)  # in the writer thread, waiting on the gate
        for i in range(50):
            w.submit(Frame("spartn", bytes([i]) * 100))
        assert w.queued_bytes() <= 1000
        assert stats.dropped_frames == 40 and stats.dropped_bytes == 4000
        out.gate.set()
        wait_for(lambda: len(out.writes) == 11)
        assert [c[0] for c in out.writes[1:]] == list(range(40, 50))  # the newest corrections survive
    finally:
        w.stop()


def test_writer_reopens_and_rewrites_whole_frame():
    opened = []
    out = RecordingOutput(fail_first_writes=1, fail_opens=2)
    w, stats = _writer(out, on_open=lambda: opened.append(1) or w.submit(Frame("ubx", b"KEY"), priority=True))
    w.start()
    try:
        w.submit(Frame("spartn", b"frame-1"))
        wait_for(lambda: b"frame-1" in out.writes)
        assert out.opens == 4  # two failed opens, one open, a failed write, a reopen
        assert out.writes == [b"KEY", b"frame-1"]  # the key written on the reopen goes first
        assert len(opened) == 2 and stats.output_state == "open"
    finally:
        w.stop()


def test_idle_writer_writes_from_the_submitting_thread():
    out = RecordingOutput()
    w, stats = _writer(out)
    w.start()
    try:
        wait_for(w.opened.is_set)
        w.submit(Frame("spartn", b"frame-1"))
        assert out.writes == [b"frame-1"] and out.threads == [threading.current_thread().name]
        assert stats.output_frames == 1 and w.queued_bytes() == 0
    finally:
        w.stop()


def test_cut_frame_is_finished_first_after_a_timed_out_write(caplog):
    out = RecordingOutput()
    out.write_timeout = 0.3
    w, stats = _writer(out, on_open=lambda: w.submit(Frame("ubx", b"KEY"), priority=True))
    w.start()
    try:
        wait_for(lambda: out.writes == [b"KEY"])
        out.room = 3  # the receiver stops reading after 3 bytes of the next frame
        w.submit(Frame("spartn", b"frame-1"))
        w.submit(Frame("spartn", b"frame-2"))
        wait_for(lambda: out.opens == 2)  # the write timed out: the output was reopened
        assert "failed (write timed out after 0.3 s), reopening" in caplog.text and out.stream == b"KEYfra"
        out.room = None
        out.gate.set()
        wait_for(lambda: stats.output_frames == 4)
        # the receiver sees whole frames only: the cut one's rest, then the key of the reopen, then the rest
        assert out.stream == b"KEYframe-1KEYframe-2"
        # the cut write came from the submitting thread; the writer thread did the rest
        assert out.threads[1] == threading.current_thread().name and set(out.threads) - {out.threads[1]} == {"writer"}
    finally:
        w.stop()


def test_frames_submitted_together_go_out_in_one_write_from_an_idle_writer():
    out = RecordingOutput()
    w, stats = _writer(out)
    w.start()
    try:
        wait_for(w.opened.is_set)
        w.submit_many([Frame("spartn", b"frame-1"), Frame("spartn", b"frame-2"), Frame("spartn", b"frame-3")])
        assert out.writes == [b"frame-1frame-2frame-3"] and out.threads == [threading.current_thread().name]
        assert stats.output_frames == 3 and stats.output_bytes == 21 and w.queued_bytes() == 0
    finally:
        w.stop()


def test_frames_submitted_together_and_cut_keep_their_order_and_stay_whole():
    out = RecordingOutput()
    w, stats = _writer(out, on_open=lambda: w.submit(Frame("ubx", b"KEY"), priority=True))
    w.start()
    try:
        wait_for(lambda: out.writes == [b"KEY"])
        out.room = 10  # the output takes frame-1 and 3 bytes of frame-2
        w.submit_many([Frame("spartn", b"frame-1"), Frame("spartn", b"frame-2"), Frame("spartn", b"frame-3")])
        assert out.stream == b"KEYframe-1fra" and stats.output_frames == 2  # the key and frame-1 are out whole
        w.submit(Frame("ubx", b"KEY2"), priority=True)  # a priority frame waits for the cut frame's rest only
        out.room = None
        out.gate.set()
        wait_for(lambda: stats.output_frames == 5)
        assert out.stream == b"KEYframe-1frame-2KEY2frame-3" and out.opens == 1
    finally:
        w.stop()


def test_frames_submitted_together_to_a_busy_writer_are_queued_in_order():
    out = RecordingOutput()
    w, stats = _writer(out)
    out.gate.clear()
    w.start()
    try:
        wait_for(w.opened.is_set)
        w.submit(Frame("spartn", b"c0"))
        wait_for(lambda: w.queued_bytes() == 0)  # c0 is in the writer thread, waiting on the gate
        w.submit_many([Frame("spartn", b"c1"), Frame("spartn", b"c2")])
        assert w.queued_bytes() == 4
        out.gate.set()
        wait_for(lambda: stats.output_frames == 3)
        assert out.writes == [b"c0", b"c1", b"c2"]
    finally:
        w.stop()


def test_stalled_output_is_reported_and_recovers(monkeypatch):
    monkeypatch.setattr(writer_mod, "STALL_AFTER", 0.2)
    out = RecordingOutput()
    w, stats = _writer(out)
    w.start()
    try:
        wait_for(w.opened.is_set)
        out.gate.clear()  # the receiver stops reading
        w.submit(Frame("spartn", b"frame-1"))
        wait_for(lambda: stats.output_state == "stalled")
        out.gate.set()
        wait_for(lambda: stats.output_state == "open" and out.writes == [b"frame-1"])
        assert out.opens == 1  # within the write timeout: no reopen
    finally:
        w.stop()


# --- lab: the daemon, a broker and a receiver simulator whose pty is unplugged ---------------------------------------


@pytest.mark.timeout(90)
def test_serial_port_unplug_and_return(tmp_path, broker, receiver, daemons):
    keys = lab_keys()
    replayer = MqttReplayer(broker).connect()
    try:
        fwd = daemons(mqtt_config(tmp_path, broker, receiver, keys=keys))
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
