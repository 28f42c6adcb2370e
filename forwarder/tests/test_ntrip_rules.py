"""Unit: the caster's rules (facts section 3) against an in-process fake caster.

No connection before a position, the session kept through the silence before the first data, UBX-MGA forwarded whole,
refusals other than 401 backed off, plain TCP warned on every connect."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time

import pytest
from pointperfect_forwarder.backoff import Backoff
from pointperfect_forwarder.config import NtripSettings
from pointperfect_forwarder.inputs import ntrip
from pointperfect_forwarder.inputs.ntrip import NtripInput
from pointperfect_forwarder.stats import Stats
from pointperfect_sim import frames as F

GGA = F.gga_sentence(52.0, 5.0, 10.0, quality=1)


class _Pipeline:
    def __init__(self, gga: bytes | None = GGA):
        self.output_ready = threading.Event()
        self.output_ready.set()
        self.position = gga
        self.gga_calls = 0
        self.frames: list[tuple[str, bytes]] = []

    def submit(self, frame, priority=False):
        self.frames.append((frame.stream, frame.data))

    def gga(self):
        self.gga_calls += 1
        return self.position


class _Caster:
    """A listening socket that records what each client sends and answers with `reply` (None: stays silent)."""

    def __init__(self, reply: bytes | None = b"ICY 200 OK\r\n\r\n", close: bool = False):
        self.reply = reply
        self.close_after_reply = close
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.received: list[bytearray] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        self.server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _addr = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            buf = bytearray()
            self.conns.append(conn)
            self.received.append(buf)
            threading.Thread(target=self._serve, args=(conn, buf), daemon=True).start()

    def _serve(self, conn, buf):
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            if self.reply is not None:
                conn.sendall(self.reply)
            if self.close_after_reply:
                conn.close()
                return
            while chunk := conn.recv(4096):
                buf += chunk

    def send(self, data: bytes, conn: int = -1):
        self.conns[conn].sendall(data)

    def gga_count(self, conn: int = -1) -> int:
        return bytes(self.received[conn]).count(b"GGA,")

    def close(self):
        self._stop.set()
        self.server.close()
        for conn in self.conns:
            conn.close()
        self._thread.join(2)


@pytest.fixture
def caster():
    made: list[_Caster] = []

    def make(**kwargs) -> _Caster:
        made.append(_Caster(**kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


def _input(port: int, pipeline: _Pipeline, no_data_timeout: float = 30, gga_interval: float = 10, tls=False):
    cfg = NtripSettings("127.0.0.1", port, tls, "NEAR-SPARTN", 1, "user", "pass", gga_interval, 120, None, True)
    stats = Stats("ntrip", f"127.0.0.1:{port}", "serial", "/dev/x")
    return NtripInput(cfg, None, stats, pipeline, backoff=Backoff(0.05, 0.1, 5), no_data_timeout=no_data_timeout)


def _until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_no_connection_before_a_position_then_connects_and_sends_gga(caster):
    fake = caster()
    pipeline = _Pipeline(gga=None)
    inp = _input(fake.port, pipeline)
    inp.start()
    try:
        assert _until(lambda: inp.stats.input_state == "waiting_for_position")
        assert inp.stats.last_error == ntrip.WAITING_FOR_POSITION
        assert inp.stats.input_error == "waiting for a position fix (no GGA from the receiver and no fixed_position)"
        time.sleep(2.2)
        assert fake.conns == []  # no socket opened without a GGA
        assert inp.stats.input_state == "waiting_for_position"
        assert 2 <= pipeline.gga_calls <= 5  # checked about once a second, no busy loop
        assert time.monotonic() - inp.heartbeat < 1.5  # the watchdog sees a live thread
        pipeline.position = GGA  # the receiver gets a fix
        assert _until(lambda: inp.stats.input_state == "connected", 3)
        assert len(fake.conns) == 1
        assert _until(lambda: fake.gga_count() >= 1)
        assert bytes(fake.received[0]).endswith(GGA)
        assert inp.stats.reconnects == 0
    finally:
        inp.stop()
    assert inp.stats.input_state == "stopped"


def test_stop_while_waiting_for_a_position_is_prompt(caster):
    fake = caster()
    inp = _input(fake.port, _Pipeline(gga=None))
    inp.start()
    assert _until(lambda: inp.stats.input_state == "waiting_for_position")
    began = time.monotonic()
    inp.stop()
    assert not inp.alive() and time.monotonic() - began < 2
    assert fake.conns == []


def test_session_kept_through_the_initial_silence_with_gga_going_out(caster, monkeypatch):
    monkeypatch.setattr(ntrip, "INITIAL_SILENCE", 2.0)
    fake = caster()
    pipeline = _Pipeline()
    inp = _input(fake.port, pipeline, no_data_timeout=0.4, gga_interval=0.5)
    began = time.monotonic()
    assert inp.session() is None  # ends only after INITIAL_SILENCE without data
    took = time.monotonic() - began
    assert 1.9 < took < 4, took
    assert len(fake.conns) == 1
    assert _until(lambda: fake.gga_count() >= 3, 2)  # GGA kept going out every gga_interval (0.5 s reads)
    assert inp.stats.input_state == "backoff"
    assert re.fullmatch(r"no data for [23] s since connecting: reconnecting", inp.stats.last_error)


def test_watchdog_starts_at_the_first_data(caster, monkeypatch):
    monkeypatch.setattr(ntrip, "INITIAL_SILENCE", 30.0)
    fake = caster()
    pipeline = _Pipeline()
    inp = _input(fake.port, pipeline, no_data_timeout=0.5, gga_interval=0.2)
    result: list = []
    runner = threading.Thread(target=lambda: result.append(inp.session()))
    runner.start()
    try:
        assert _until(lambda: inp.stats.input_state == "connected")
        time.sleep(1.2)  # longer than no_data_timeout, still before the first data
        assert inp.stats.input_state == "connected"
        frame = F.synthetic_spartn(1)[0]
        fake.send(frame)
        assert _until(lambda: pipeline.frames == [("spartn", frame)])
        began = time.monotonic()
        runner.join(5)  # now the normal watchdog applies
        assert not runner.is_alive()
        assert time.monotonic() - began < 3  # no_data_timeout (0.5 s), not INITIAL_SILENCE (30 s)
    finally:
        inp._stop.set()
        runner.join(5)
    assert result == [None]
    assert inp.stats.last_error.startswith("no data for ") and "since connecting" not in inp.stats.last_error


def test_ubx_mga_interleaved_with_spartn_and_rtcm_is_forwarded_whole(caster):
    fake = caster()
    pipeline = _Pipeline()
    inp = _input(fake.port, pipeline)
    spartn = F.synthetic_spartn(6, size=90)
    mga = F.mga_frames(600)
    mga_list = [f.raw for f in F.split_frames(mga)[0]]
    assert len(mga_list) >= 6
    want: list[tuple[str, bytes]] = []
    for i, frame in enumerate(spartn):
        want += [("spartn", frame), ("ubx", mga_list[i])]
    want.append(("rtcm", F.rtcm_1005()))
    wire = b"".join(data for _stream, data in want)
    runner = threading.Thread(target=inp.session)
    runner.start()
    try:
        assert _until(lambda: inp.stats.input_state == "connected")
        for at in range(0, len(wire), 37):  # split mid-frame
            fake.send(wire[at : at + 37])
            time.sleep(0.002)
        assert _until(lambda: len(pipeline.frames) == len(want))
    finally:
        inp._stop.set()
        runner.join(5)
    assert pipeline.frames == want
    assert inp.stats.in_streams["ubx"]["frames"] == len(spartn)
    assert inp.stats.garbage_bytes == 0


@pytest.mark.parametrize(
    ("status", "reason"),
    [(409, "Conflict"), (403, "Forbidden"), (429, "Too Many Requests"), (503, "Service Unavailable")],
)
def test_refusal_is_a_normal_backoff_not_auth_failed(caster, status, reason):
    fake = caster(reply=f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n".encode(), close=True)
    inp = _input(fake.port, _Pipeline())
    assert inp.session() is None
    assert inp.stats.input_state == "backoff"
    assert inp.stats.last_error == f"caster refused the connection ({status}): is another client using this account?"
    assert inp.backoff.attempt == 0  # the base loop takes next_delay(), not the auth_failed cap


def test_refusal_without_a_blank_line_and_401_still_auth_failed(caster):
    fake = caster(reply=b"HTTP/1.0 409 Conflict\r\n", close=True)
    inp = _input(fake.port, _Pipeline())
    assert inp.session() is None
    assert inp.stats.last_error == "caster refused the connection (409): is another client using this account?"
    fake = caster(reply=b"HTTP/1.0 401 Unauthorized\r\n\r\n", close=True)
    inp = _input(fake.port, _Pipeline())
    assert inp.session() is None
    assert inp.stats.input_state == "auth_failed"


def test_refusals_use_the_ordinary_backoff_in_the_input_loop(caster):
    fake = caster(reply=b"HTTP/1.1 409 Conflict\r\n\r\n", close=True)
    inp = _input(fake.port, _Pipeline())  # backoff 0.05 .. 0.1 s
    inp.start()
    try:
        assert _until(lambda: len(fake.conns) >= 4, 5)  # quick retries, not the auth_failed cap
    finally:
        inp.stop()
    assert inp.stats.input_state == "stopped"
    assert inp.stats.last_error == "caster refused the connection (409): is another client using this account?"


def test_plain_tcp_warns_on_every_connect(caster, caplog):
    fake = caster(reply=b"HTTP/1.1 503 Service Unavailable\r\n\r\n", close=True)
    inp = _input(fake.port, _Pipeline())
    with caplog.at_level(logging.WARNING, logger="pointperfect_forwarder.inputs.ntrip"):
        inp.session()
        inp.session()
    plain = [r for r in caplog.records if "clear text" in r.getMessage()]
    assert len(plain) == 2
    assert "ntrip.allow_plain_auth" in plain[0].getMessage()
