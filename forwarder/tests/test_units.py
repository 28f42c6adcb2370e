"""Unit: backoff, writer (priority, no splice, bounded queue, reopen), NTRIP parsing, receiver logic, sd_notify."""

from __future__ import annotations

import random
import socket
import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st
from pointperfect_forwarder import writer as writer_mod
from pointperfect_forwarder.backoff import Backoff
from pointperfect_forwarder.config import NtripSettings
from pointperfect_forwarder.framing import Frame
from pointperfect_forwarder.inputs.ntrip import ChunkedDecoder, build_request, parse_response
from pointperfect_forwarder.outputs import Output
from pointperfect_forwarder.receiver import Receiver, valset_frame
from pointperfect_forwarder.stats import Stats
from pointperfect_forwarder.systemd import Notifier
from pointperfect_forwarder.writer import Writer
from pointperfect_sim import frames as F

# --- backoff ---------------------------------------------------------------------------------------------------------


def test_backoff_grows_jittered_to_cap_and_resets_after_long_session():
    now = [0.0]
    b = Backoff(1, 60, 60, rng=random.Random(1), clock=lambda: now[0])
    delays = [b.next_delay() for _ in range(10)]
    for i, d in enumerate(delays):
        ceiling = min(60, 2**i)
        assert ceiling / 2 <= d <= ceiling
    assert max(delays) <= 60 and delays[-1] >= 30
    b.session_started()
    now[0] += 10
    b.session_ended()  # a short session does not reset: no tight loop against a flapping server
    assert b.next_delay() >= 30
    b.session_started()
    now[0] += 61
    b.session_ended()
    assert b.next_delay() <= 1


# --- writer ----------------------------------------------------------------------------------------------------------


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


def _wait(pred, timeout=5.0):
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
        _wait(w.opened.is_set)
        w.submit(Frame("spartn", b"c0"))
        _wait(lambda: w.queued_bytes() == 0)  # c0 is in the writer thread, waiting on the gate
        for i in range(1, 4):
            w.submit(Frame("spartn", b"c%d" % i))
        w.submit(Frame("ubx", b"KEY"), priority=True)
        out.gate.set()
        _wait(lambda: len(out.writes) == 5)
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
        _wait(lambda: len(out.writes) == 900)
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
        _wait(w.opened.is_set)
        w.submit(Frame("spartn", b"x" * 10))
        _wait(lambda: w.queued_bytes() == 0)  # in the writer thread, waiting on the gate
        for i in range(50):
            w.submit(Frame("spartn", bytes([i]) * 100))
        assert w.queued_bytes() <= 1000
        assert stats.dropped_frames == 40 and stats.dropped_bytes == 4000
        out.gate.set()
        _wait(lambda: len(out.writes) == 11)
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
        _wait(lambda: b"frame-1" in out.writes)
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
        _wait(w.opened.is_set)
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
        _wait(lambda: out.writes == [b"KEY"])
        out.room = 3  # the receiver stops reading after 3 bytes of the next frame
        w.submit(Frame("spartn", b"frame-1"))
        w.submit(Frame("spartn", b"frame-2"))
        _wait(lambda: out.opens == 2)  # the write timed out: the output was reopened
        assert "failed (write timed out after 0.3 s), reopening" in caplog.text and out.stream == b"KEYfra"
        out.room = None
        out.gate.set()
        _wait(lambda: stats.output_frames == 4)
        # the receiver sees whole frames only: the cut one's rest, then the key of the reopen, then the rest
        assert out.stream == b"KEYframe-1KEYframe-2"
        # the cut write came from the submitting thread; the writer thread did the rest
        assert out.threads[1] == threading.current_thread().name and set(out.threads) - {out.threads[1]} == {"writer"}
    finally:
        w.stop()


def test_stalled_output_is_reported_and_recovers(monkeypatch):
    monkeypatch.setattr(writer_mod, "STALL_AFTER", 0.2)
    out = RecordingOutput()
    w, stats = _writer(out)
    w.start()
    try:
        _wait(w.opened.is_set)
        out.gate.clear()  # the receiver stops reading
        w.submit(Frame("spartn", b"frame-1"))
        _wait(lambda: stats.output_state == "stalled")
        out.gate.set()
        _wait(lambda: stats.output_state == "open" and out.writes == [b"frame-1"])
        assert out.opens == 1  # within the write timeout: no reopen
    finally:
        w.stop()


# --- NTRIP protocol --------------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(body=st.lists(st.binary(min_size=1, max_size=300), max_size=8), cuts=st.lists(st.integers(0, 3000)))
def test_chunked_decoder_any_chunking(body, cuts):
    wire = b"".join(b"%x;ext=1\r\n" % len(c) + c + b"\r\n" for c in body) + b"0\r\n\r\n"
    dec, out, pos = ChunkedDecoder(), b"", 0
    for cut in [*sorted({c for c in cuts if c < len(wire)}), len(wire)]:
        out += dec.feed(wire[pos:cut])
        pos = cut
    assert out == b"".join(body) and dec.done


def test_parse_response_variants():
    assert parse_response(b"ICY 200 OK\r\n\r\n\x73abc") == (200, {}, b"\x73abc")
    assert parse_response(b"ICY 200 OK\r") is None
    status, headers, rest = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n")
    assert (status, headers["transfer-encoding"], rest) == (200, "chunked", b"5\r\n")
    assert parse_response(b"HTTP/1.0 401 Unauthorized\r\n") is None
    assert parse_response(b"HTTP/1.0 401 Unauthorized\r\n", eof=True)[0] == 401
    assert parse_response(b"SOURCETABLE 200 OK\r\n")[0] == 404


def test_requests_rev1_rev2():
    cfg = NtripSettings("caster", 2102, True, "NEAR-SPARTN", 2, "user", "pa:ss", 10, 120, None)
    req = build_request(cfg).decode()
    assert req.startswith("GET /NEAR-SPARTN HTTP/1.1\r\n") and "Ntrip-Version: Ntrip/2.0\r\n" in req
    assert "Authorization: Basic dXNlcjpwYTpzcw==\r\n" in req and req.endswith("\r\n\r\n")
    cfg.version = 1
    req = build_request(cfg).decode()
    assert req.startswith("GET /NEAR-SPARTN HTTP/1.0\r\n") and "Ntrip-Version" not in req


# --- receiver --------------------------------------------------------------------------------------------------------


def _receiver(clock):
    sent, resets = [], []
    stats = Stats("ntrip", "x:1", "serial", "/dev/x")
    rx = Receiver(
        stats,
        sent.append,
        resets.append,
        configure=True,
        port="UART2",
        source="lband",
        have_keys=lambda: True,
        clock=lambda: clock[0],
    )
    return rx, stats, sent, resets


def test_valset_contents():
    assert valset_frame("UART2", "lband") == F.cfg_valset({0x20A70001: 1, 0x10750005: 1})


def test_receiver_config_ack_retry_and_failure():
    clock = [0.0]
    rx, stats, sent, _ = _receiver(clock)
    rx.tick()
    assert [f.data for f in sent] == [valset_frame("UART2", "lband")] and stats.receiver_state == "pending"
    for _ in range(3):
        clock[0] += 2.1
        rx.tick()
    valsets = lambda: [f for f in sent if f.data[2:4] == b"\x06\x8a"]  # noqa: E731
    assert len(valsets()) == 3 and stats.receiver_state == "failed"  # three tries without an ACK
    clock[0] += 61
    rx.tick()
    assert len(valsets()) == 4 and stats.receiver_state == "pending"
    assert sent[-1].data == b"\xb5\x62\x02\x36\x00\x00\x38\xaa"  # and the periodic key poll went out
    rx.feed(F.ubx_frame(0x05, 0x01, b"\x06\x8a"))
    assert stats.receiver_state == "applied"


def test_receiver_gga_grace_and_fixed_position():
    clock = [0.0]
    rx, _, _, _ = _receiver(clock)
    fix = F.gga_sentence(52.0, 5.0, 10.0)
    rx.feed(fix)
    rx.feed(F.gga_sentence(quality=0))  # fix lost: the last good GGA is kept
    clock[0] += 100
    assert rx.gga(120, None) == fix
    clock[0] += 30
    assert rx.gga(120, None) is None  # grace over, no fixed position
    fixed = rx.gga(120, {"lat": -33.5, "lon": 151.25, "alt": 20})
    assert b",3330.00000,S,15115.00000,E,1," in fixed


def test_receiver_reset_from_banner_or_missing_keys_debounced():
    clock = [0.0]
    rx, stats, _, resets = _receiver(clock)
    rx.feed(F.boot_notice(with_inf=True))
    assert len(resets) == 1 and stats.receiver_resets == 1  # one banner = one reset
    clock[0] += 10
    rx.feed(F.ubx_frame(0x02, 0x36, F.spartnkey_payload([])))  # poll answer: no keys held
    assert len(resets) == 2 and stats.receiver_state == "pending"


# --- systemd ---------------------------------------------------------------------------------------------------------


def test_notifier_datagrams(tmp_path):
    path = str(tmp_path / "n.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
        assert n.watchdog_interval == 2.0
        assert n.ready("up") and n.watchdog() and n.stopping()
        assert [sock.recv(100) for _ in range(3)] == [b"READY=1\nSTATUS=up", b"WATCHDOG=1", b"STOPPING=1"]
        n.close()
    finally:
        sock.close()
    assert Notifier({}).notify("READY=1") is False
