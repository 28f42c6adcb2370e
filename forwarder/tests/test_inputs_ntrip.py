"""inputs/ntrip.py: the protocol (chunked decoding, responses, requests), the caster's rules (facts section 3)
against an in-process fake caster, one reused receive buffer; in the lab (str2str behind the PointPerfect-like gate
and stunnel TLS): frames and GGA, 401, plain TCP, waiting for a fix, the silence before the first data, MGA
mountpoints, one session per account."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
import tracemalloc

import pytest
from fwd_helpers import SinkPipeline, credentials, forwarder_config, lab_keys, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from pointperfect_forwarder.backoff import Backoff
from pointperfect_forwarder.config import NtripSettings
from pointperfect_forwarder.inputs import ntrip
from pointperfect_forwarder.inputs.ntrip import (
    RECV_SIZE,
    ChunkedDecoder,
    NtripInput,
    ProtocolError,
    build_request,
    parse_response,
)
from pointperfect_forwarder.stats import Stats
from pointperfect_sim import frames as F
from pointperfect_sim.caster import Caster
from pointperfect_sim.receiver import ReceiverSim

# --- protocol ---------------------------------------------------------------------------------------------------------


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


# --- the caster's rules, against a fake caster ------------------------------------------------------------------------

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

    def submit_many(self, frames):
        self.frames.extend((frame.stream, frame.data) for frame in frames)

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
def fake_caster():
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


def test_no_connection_before_a_position_then_connects_and_sends_gga(fake_caster):
    fake = fake_caster()
    pipeline = _Pipeline(gga=None)
    inp = _input(fake.port, pipeline)
    inp.start()
    try:
        assert wait_until(lambda: inp.stats.input_state == "waiting_for_position", 5)
        assert inp.stats.last_error == ntrip.WAITING_FOR_POSITION
        assert inp.stats.input_error == "waiting for a position fix (no GGA from the receiver and no fixed_position)"
        time.sleep(2.2)
        assert fake.conns == []  # no socket opened without a GGA
        assert inp.stats.input_state == "waiting_for_position"
        assert 2 <= pipeline.gga_calls <= 5  # checked about once a second, no busy loop
        assert time.monotonic() - inp.heartbeat < 1.5  # the watchdog sees a live thread
        pipeline.position = GGA  # the receiver gets a fix
        assert wait_until(lambda: inp.stats.input_state == "connected", 3)
        assert len(fake.conns) == 1
        assert wait_until(lambda: fake.gga_count() >= 1, 5)
        assert bytes(fake.received[0]).endswith(GGA)
        assert inp.stats.reconnects == 0
    finally:
        inp.stop()
    assert inp.stats.input_state == "stopped"


def test_stop_while_waiting_for_a_position_is_prompt(fake_caster):
    fake = fake_caster()
    inp = _input(fake.port, _Pipeline(gga=None))
    inp.start()
    assert wait_until(lambda: inp.stats.input_state == "waiting_for_position", 5)
    began = time.monotonic()
    inp.stop()
    assert not inp.alive() and time.monotonic() - began < 2
    assert fake.conns == []


def test_session_kept_through_the_initial_silence_with_gga_going_out(fake_caster, monkeypatch):
    monkeypatch.setattr(ntrip, "INITIAL_SILENCE", 2.0)
    fake = fake_caster()
    pipeline = _Pipeline()
    inp = _input(fake.port, pipeline, no_data_timeout=0.4, gga_interval=0.5)
    began = time.monotonic()
    assert inp.session() is None  # ends only after INITIAL_SILENCE without data
    took = time.monotonic() - began
    assert 1.9 < took < 4, took
    assert len(fake.conns) == 1
    assert wait_until(lambda: fake.gga_count() >= 3, 2)  # GGA kept going out every gga_interval (0.5 s reads)
    assert inp.stats.input_state == "backoff"
    assert re.fullmatch(r"no data for [23] s since connecting: reconnecting", inp.stats.last_error)


def test_watchdog_starts_at_the_first_data(fake_caster, monkeypatch):
    monkeypatch.setattr(ntrip, "INITIAL_SILENCE", 30.0)
    fake = fake_caster()
    pipeline = _Pipeline()
    inp = _input(fake.port, pipeline, no_data_timeout=0.5, gga_interval=0.2)
    result: list = []
    runner = threading.Thread(target=lambda: result.append(inp.session()))
    runner.start()
    try:
        assert wait_until(lambda: inp.stats.input_state == "connected", 5)
        time.sleep(1.2)  # longer than no_data_timeout, still before the first data
        assert inp.stats.input_state == "connected"
        frame = F.synthetic_spartn(1)[0]
        fake.send(frame)
        assert wait_until(lambda: pipeline.frames == [("spartn", frame)], 5)
        began = time.monotonic()
        runner.join(5)  # now the normal watchdog applies
        assert not runner.is_alive()
        assert time.monotonic() - began < 3  # no_data_timeout (0.5 s), not INITIAL_SILENCE (30 s)
    finally:
        inp._stop.set()
        runner.join(5)
    assert result == [None]
    assert inp.stats.last_error.startswith("no data for ") and "since connecting" not in inp.stats.last_error


def test_ubx_mga_interleaved_with_spartn_and_rtcm_is_forwarded_whole(fake_caster):
    fake = fake_caster()
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
        assert wait_until(lambda: inp.stats.input_state == "connected", 5)
        for at in range(0, len(wire), 37):  # split mid-frame
            fake.send(wire[at : at + 37])
            time.sleep(0.002)
        assert wait_until(lambda: len(pipeline.frames) == len(want), 5)
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
def test_refusal_is_a_normal_backoff_not_auth_failed(fake_caster, status, reason):
    fake = fake_caster(reply=f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\n\r\n".encode(), close=True)
    inp = _input(fake.port, _Pipeline())
    assert inp.session() is None
    assert inp.stats.input_state == "backoff"
    assert inp.stats.last_error == f"caster refused the connection ({status}): is another client using this account?"
    assert inp.backoff.attempt == 0  # the base loop takes next_delay(), not the auth_failed cap


def test_refusal_without_a_blank_line_and_401_still_auth_failed(fake_caster):
    fake = fake_caster(reply=b"HTTP/1.0 409 Conflict\r\n", close=True)
    inp = _input(fake.port, _Pipeline())
    assert inp.session() is None
    assert inp.stats.last_error == "caster refused the connection (409): is another client using this account?"
    fake = fake_caster(reply=b"HTTP/1.0 401 Unauthorized\r\n\r\n", close=True)
    inp = _input(fake.port, _Pipeline())
    assert inp.session() is None
    assert inp.stats.input_state == "auth_failed"


def test_refusals_use_the_ordinary_backoff_in_the_input_loop(fake_caster):
    fake = fake_caster(reply=b"HTTP/1.1 409 Conflict\r\n\r\n", close=True)
    inp = _input(fake.port, _Pipeline())  # backoff 0.05 .. 0.1 s
    inp.start()
    try:
        assert wait_until(lambda: len(fake.conns) >= 4, 5)  # quick retries, not the auth_failed cap
    finally:
        inp.stop()
    assert inp.stats.input_state == "stopped"
    assert inp.stats.last_error == "caster refused the connection (409): is another client using this account?"


def test_plain_tcp_warns_on_every_connect(fake_caster, caplog):
    fake = fake_caster(reply=b"HTTP/1.1 503 Service Unavailable\r\n\r\n", close=True)
    inp = _input(fake.port, _Pipeline())
    with caplog.at_level(logging.WARNING, logger="pointperfect_forwarder.inputs.ntrip"):
        inp.session()
        inp.session()
    plain = [r for r in caplog.records if "clear text" in r.getMessage()]
    assert len(plain) == 2
    assert "ntrip.allow_plain_auth" in plain[0].getMessage()


# --- one receive buffer (heap fragmentation, docs/reliability.md) -----------------------------------------------------


def test_stream_reads_whole_frames_without_a_large_allocation_per_read():
    cfg = NtripSettings("caster", 2101, False, "NEAR-SPARTN", 2, "user", "pass", 10, 120, None)
    pipeline = SinkPipeline()
    stats = Stats("ntrip", "caster:2101", "serial", "/dev/x")
    inp = NtripInput(cfg, None, stats, pipeline, backoff=Backoff(), no_data_timeout=30)
    sent = F.synthetic_spartn(40, size=80)
    ours, caster = socket.socketpair()
    ours.settimeout(5)
    errors: list[Exception] = []

    def run():
        try:
            inp._stream(ours, "caster:2101")
        except ProtocolError as exc:
            errors.append(exc)

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        reader = threading.Thread(target=run)
        reader.start()
        assert caster.recv(4096).startswith(b"GET /NEAR-SPARTN ")
        caster.sendall(b"ICY 200 OK\r\n\r\n")
        for frame in sent:  # one read per frame
            time.sleep(0.01)
            caster.sendall(frame)
        time.sleep(0.05)
        caster.close()
        reader.join(10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        ours.close()
    assert not reader.is_alive()
    assert [str(e) for e in errors] == ["caster closed the connection"]
    assert pipeline.frames == sent
    # a recv(65536) per read would put at least one 64 KB block on top of the baseline
    assert peak - base < RECV_SIZE // 2, peak - base


# --- lab: the daemon, the caster and a receiver simulator -------------------------------------------------------------

WAITING = "waiting for a position fix (no GGA from the receiver and no fixed_position)"
CONFLICT = "caster refused the connection (409): is another client using this account?"


@pytest.fixture
def caster(pki, tmp_path):
    c = Caster(tmp_path / "caster", mountpoint="NEAR-SPARTN", user="gw-user", password="s3cr3t-ntrip-pw", pki=pki)
    c.start()
    yield c
    c.stop()


def _config(tmp_path, caster, receiver, sections: dict | None = None, **ntrip):
    creds = credentials(tmp_path, caster=caster, keys=lab_keys())
    return forwarder_config(
        tmp_path,
        creds,
        input="ntrip",
        ca_file=str(caster.ca_path),
        ntrip={"gga_interval": 1, **ntrip},
        output={"type": "serial", "device": receiver.device_path, "baudrate": 115200},
        **(sections or {}),
    )


def _feed_until(caster, receiver, frames, stop):
    """The caster only relays to connected clients: feed in rounds until the receiver has them."""
    while not stop.is_set():
        caster.feed(b"".join(frames))
        if stop.wait(0.5):
            return


def _feeding(caster, receiver, frames):
    """Start feeding `frames` in rounds; returns the stop function."""
    stop = threading.Event()
    feeder = threading.Thread(target=_feed_until, args=(caster, receiver, frames, stop))
    feeder.start()

    def done():
        stop.set()
        feeder.join()

    return done


@pytest.mark.timeout(90)
@pytest.mark.parametrize("version", [2, 1])
def test_ntrip_tls_delivers_frames_and_gga_reaches_caster(tmp_path, caster, receiver, daemons, version):
    fwd = daemons(_config(tmp_path, caster, receiver, version=version))
    st = fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    assert st["input"]["endpoint"] == f"127.0.0.1:{caster.tls_port}"  # tls: true takes the credentials' tls_port
    gga = caster.wait_gga(2, timeout=15)
    assert len(gga) >= 2
    assert gga[0].startswith("$GNGGA") and ",5200.00000,N," in gga[0]  # the receiver's own GGA, unchanged
    sent = F.synthetic_spartn(20)
    rtcm = F.rtcm_1005()
    caster.feed(b"".join(sent) + rtcm)  # the caster relayed our GGA, so this client is connected
    got = receiver.wait_frames("spartn", 20)
    assert [f.raw for f in got] == sent
    assert [f.raw for f in receiver.wait_frames("rtcm", 1)] == [rtcm]
    assert receiver.garbage_bytes == 0
    log = fwd.log()
    assert "s3cr3t-ntrip-pw" not in log
    assert "c0ffee00" not in log and "beefcafe" not in log


@pytest.mark.timeout(90)
def test_ntrip_401_reports_auth_failed(tmp_path, caster, receiver, daemons):
    creds = credentials(tmp_path, caster=caster, keys=lab_keys())
    text = creds.read_text().replace("s3cr3t-ntrip-pw", "wrong-password")
    creds.write_text(text)
    cfg = forwarder_config(
        tmp_path,
        creds,
        input="ntrip",
        ca_file=str(caster.ca_path),
        output={"type": "serial", "device": receiver.device_path, "baudrate": 115200},
    )
    fwd = daemons(cfg)
    st = fwd.wait_status(lambda s: s["input"]["state"] == "auth_failed")
    assert st["input"]["last_error"] == "credentials rejected: re-run provisioning"
    assert st["healthy"] is False
    assert fwd.proc.poll() is None  # never exits on a network-side fault
    assert "wrong-password" not in fwd.log()
    # provisioning fixes the password: the changed credentials file is picked up without a restart
    creds.write_text(text.replace("wrong-password", "s3cr3t-ntrip-pw"))
    fwd.wait_status(lambda s: s["input"]["state"] == "connected", timeout=30)


@pytest.mark.timeout(90)
def test_ntrip_plain_with_fixed_position_and_no_fix(tmp_path, caster, receiver, daemons):
    receiver.quality = 0  # the receiver has no fix: the fixed position is sent instead
    fixed = {"lat": 48.5, "lon": -3.25, "alt": 30}
    fwd = daemons(_config(tmp_path, caster, receiver, tls=False, allow_plain_auth=True, fixed_position=fixed))
    st = fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    assert st["input"]["endpoint"] == f"127.0.0.1:{caster.port}"  # without tls: the credentials' plain port
    assert "the NTRIP password travels in clear text" in fwd.log()  # warned on every connect
    gga = caster.wait_gga(1, timeout=15)
    assert gga and ",4830.00000,N,00315.00000,W," in gga[0]
    stop = threading.Event()
    sent = F.synthetic_spartn(5)
    feeder = threading.Thread(target=_feed_until, args=(caster, receiver, sent, stop))
    feeder.start()
    try:
        assert receiver.wait_frames("spartn", 5)
    finally:
        stop.set()
        feeder.join()
    assert [f.raw for f in receiver.frames_of("spartn")][:5] == sent


@pytest.mark.timeout(90)
def test_plain_tcp_without_allow_plain_auth_is_a_config_error(tmp_path, caster, receiver, daemons):
    fwd = daemons(_config(tmp_path, caster, receiver, tls=False))
    assert fwd.proc.wait(30) == 2
    assert "config error: ntrip.tls: " in fwd.log() and "ntrip.allow_plain_auth" in fwd.log()
    assert caster.client_bytes == b""


@pytest.mark.timeout(90)
def test_ntrip_waits_for_a_fix_then_connects(tmp_path, caster, receiver, daemons):
    receiver.quality = 0  # GGA without a fix, and no fixed_position: nothing to send the caster
    fwd = daemons(_config(tmp_path, caster, receiver))
    st = fwd.wait_status(lambda s: s["input"]["state"] == "waiting_for_position")
    assert st["input"]["last_error"] == WAITING and st["last_error"] == WAITING
    assert st["healthy"] is False
    time.sleep(3)  # several of the receiver's no-fix GGAs
    st = fwd.status()
    assert st["input"]["state"] == "waiting_for_position" and st["input"]["reconnects"] == 0
    assert caster.client_bytes == b""  # no connection, nothing sent
    assert caster.active_users() == []
    assert "connected to" not in fwd.log()
    receiver.quality = 1  # the receiver gets its fix
    st = fwd.wait_status(lambda s: s["input"]["state"] == "connected", 15)
    assert st["input"]["reconnects"] == 0
    gga = caster.wait_gga(1, timeout=15)
    assert gga and gga[0].startswith("$GNGGA") and ",5200.00000,N," in gga[0]
    sent = F.synthetic_spartn(5)
    done = _feeding(caster, receiver, sent)
    try:
        assert receiver.wait_frames("spartn", 5)
    finally:
        done()
    assert [f.raw for f in receiver.frames_of("spartn")][:5] == sent


@pytest.mark.timeout(90)
def test_ntrip_session_kept_through_the_silence_before_the_first_data(tmp_path, caster, receiver, daemons):
    fwd = daemons(_config(tmp_path, caster, receiver, {"watchdog": {"no_data_timeout": 2}}))
    fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    caster.wait_gga(1, timeout=15)
    time.sleep(6)  # three times no_data_timeout without a byte from the caster
    st = fwd.status()
    assert st["input"]["state"] == "connected" and st["input"]["reconnects"] == 0
    assert st["input"]["frames"] == 0
    assert len(caster.wait_gga(5, timeout=5)) >= 5  # GGA kept going out every gga_interval
    sent = F.synthetic_spartn(3)
    done = _feeding(caster, receiver, sent)
    try:
        assert receiver.wait_frames("spartn", 3)
        assert fwd.status()["input"]["reconnects"] == 0
    finally:
        done()
    # after the first data the normal no-data watchdog applies
    st = fwd.wait_status(lambda s: s["input"]["reconnects"] >= 1, 20)
    assert re.fullmatch(r"no data for \d+ s: reconnecting", st["input"]["last_error"])


@pytest.mark.timeout(90)
def test_ntrip_ubx_mga_interleaved_with_spartn_arrives_whole(tmp_path, caster, receiver, daemons):
    fwd = daemons(_config(tmp_path, caster, receiver))
    fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    caster.wait_gga(1, timeout=15)
    spartn = F.synthetic_spartn(4, size=120)
    mga = [f.raw for f in F.split_frames(F.mga_frames(300))[0]][:4]
    want = [frame for pair in zip(spartn, mga, strict=True) for frame in pair]  # SPARTN, MGA, SPARTN, MGA, ...
    done = _feeding(caster, receiver, want)

    def ours():
        return [f.raw for f in receiver.frames if f.kind == "spartn" or f.ubx_id == (0x13, 0x00)]

    try:
        assert wait_until(lambda: len(ours()) >= 2 * len(want), 20)
    finally:
        done()
    got = ours()
    start = got.index(want[0])
    assert got[start : start + len(want)] == want  # in order, each frame whole
    assert set(got) == set(want)
    assert receiver.garbage_bytes == 0
    st = fwd.wait_status(lambda s: s["streams"]["ubx"]["frames"] >= 2 * len(mga))  # counters lag the heartbeat (10 s)
    assert st["input"]["garbage_bytes"] == 0


@pytest.mark.timeout(90)
def test_ntrip_second_session_of_one_account_is_refused_and_backed_off(tmp_path, caster, receiver, daemons):
    first = daemons(_config(tmp_path / "a", caster, receiver))
    first.wait_status(lambda s: s["input"]["state"] == "connected")
    caster.wait_gga(1, timeout=15)
    other = ReceiverSim(tmp_path / "ttyGNSS2").start()
    try:
        second = daemons(_config(tmp_path / "b", caster, other))
        st = second.wait_status(lambda s: s["input"]["last_error"] == CONFLICT, 30)
        assert st["input"]["state"] in ("connecting", "backoff")  # a normal backoff, not auth_failed
        second.wait_status(lambda s: s["input"]["reconnects"] >= 2, 30)  # keeps retrying at the usual pace
        assert caster.conflicts >= 2
        assert second.status()["input"]["state"] != "auth_failed"
        assert first.status()["input"]["state"] == "connected"
        first.stop()  # the account is free again: the second one gets the session
        second.wait_status(lambda s: s["input"]["state"] == "connected", 30)
    finally:
        other.close()


@pytest.mark.timeout(90)
def test_ntrip_mga_mountpoint_burst_before_the_gga_arrives_whole(pki, tmp_path, receiver, daemons):
    burst = F.mga_frames(1500)  # the -MGA mountpoints send AssistNow right after the answer, before any GGA
    caster = Caster(
        tmp_path / "caster", mountpoint="NEAR-SPARTN-MGA", user="u", password="pw", pki=pki, connect_burst=burst
    )
    caster.start()
    try:
        fwd = daemons(_config(tmp_path, caster, receiver))
        want = [f.raw for f in F.split_frames(burst)[0]]
        assert wait_until(lambda: len([f for f in receiver.frames if f.ubx_id == (0x13, 0x00)]) >= len(want), 20)
        assert [f.raw for f in receiver.frames if f.ubx_id == (0x13, 0x00)][: len(want)] == want
        assert receiver.garbage_bytes == 0
        st = fwd.wait_status(lambda s: s["streams"]["ubx"]["frames"] >= len(want))
        assert st["input"]["state"] == "connected" and st["input"]["reconnects"] == 0
    finally:
        caster.stop()
