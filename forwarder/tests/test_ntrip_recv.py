"""Unit: the NTRIP stream loop reads into one reused buffer, not a fresh 64 KB bytes per read (heap fragmentation)."""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc

from pointperfect_forwarder.backoff import Backoff
from pointperfect_forwarder.config import NtripSettings
from pointperfect_forwarder.inputs.ntrip import RECV_SIZE, NtripInput, ProtocolError
from pointperfect_forwarder.stats import Stats
from pointperfect_sim import frames as F


class _Pipeline:
    def __init__(self):
        self.output_ready = threading.Event()
        self.frames: list[bytes] = []

    def submit(self, frame, priority=False):
        self.frames.append(frame.data)

    def gga(self):
        return None


def test_stream_reads_whole_frames_without_a_large_allocation_per_read():
    cfg = NtripSettings("caster", 2101, False, "NEAR-SPARTN", 2, "user", "pass", 10, 120, None)
    pipeline = _Pipeline()
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
