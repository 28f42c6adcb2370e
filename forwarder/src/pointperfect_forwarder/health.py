"""Health: Contract 3 status file (atomic; written on changes and as a heartbeat), Contract 4 Prometheus metrics,
periodic summary log line."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import __version__
from .framing import STREAMS
from .keys import DynamicKey, iso, key_status
from .redact import Redactor
from .stats import Stats

log = logging.getLogger(__name__)
PREFIX = "pointperfect_forwarder_"
_ENCODE = json.JSONEncoder(sort_keys=True).encode  # no indent: json's C encoder (an indent takes its Python one)


def status_text(status: dict) -> str:
    """The status document as written: one top-level field per line, keys sorted. Each line is encoded by json's C
    encoder: about a fifth of the CPU of `json.dumps(indent=2)`, whose pure-Python encoder a status write spent most
    of its time in."""
    fields = ",\n".join(f"  {_ENCODE(name)}: {_ENCODE(value)}" for name, value in sorted(status.items()))
    return "{\n" + fields + "\n}\n"


class Health:
    """Builds the status document and metrics from Stats; `healthy` means data flows from input to an open output."""

    def __init__(
        self,
        stats: Stats,
        keys: Callable[[], dict[str, DynamicKey]],
        no_data_timeout: float,
        certificate_not_after: float | None,
    ):
        self.stats = stats
        stats.quiet_after = no_data_timeout  # data after that long a silence makes it healthy again: a change
        self.keys = keys
        self.no_data_timeout = no_data_timeout
        self.certificate_not_after = certificate_not_after
        self._rate_samples: list[tuple[float, int]] = []
        self._summary_last: tuple[float, int, int] | None = None

    def healthy(self) -> bool:
        return self._session_ready() and self._data_flowing()

    def _session_ready(self) -> bool:
        """Input connected, output open and, where a region is needed, chosen and its topic acknowledged."""
        s = self.stats
        if s.input_state != "connected" or s.output_state != "open":
            return False  # `subscribing` too: until its SUBACKs the session cannot receive its corrections
        if s.region_needed and s.region["selected"] is None:
            return False  # waiting for a position fix (or the L-band frequencies): no corrections can flow
        topic = s.region["topic"]
        # a region just chosen (or switched) is not ready until its topic is subscribed and acknowledged
        return not (s.input_type == "mqtt" and topic is not None and s.corrections_subscribed != topic)

    def _data_flowing(self) -> bool:
        """Corrections reach the receiver, in the way the L-band mode says, within the no-data timeout."""
        s = self.stats
        if s.lband_mode == "keys_only":
            return s.keys_last_sent_at is not None  # the corrections reach the receiver without the forwarder
        if s.lband_mode == "d9s":
            return self._pmp_flowing()
        age = s.last_data_age()
        if age is None:  # connected but nothing yet: healthy while within the watchdog time
            since = s.connected_since
            return since is not None and time.time() - since <= self.no_data_timeout
        return age <= self.no_data_timeout

    def _pmp_flowing(self) -> bool:
        """The NEO-D9S is tuned and its RXM-PMP data arrived within the no-data timeout (counted from the tuning)."""
        s = self.stats
        if s.d9s_state != "applied":
            return False
        last = max(s.d9s_applied_mono or 0.0, s.last_pmp_mono or 0.0)
        return time.monotonic() - last <= self.no_data_timeout

    def healthy_for(self) -> float | None:
        """Seconds until `healthy` turns false by time alone (the no-data timeout running out), if no data comes;
        None when it is false already or no clock decides it."""
        if not self.healthy():
            return None
        s = self.stats
        if s.lband_mode == "keys_only":
            return None
        if s.lband_mode == "d9s":
            last = max(s.d9s_applied_mono or 0.0, s.last_pmp_mono or 0.0)
            return last + self.no_data_timeout - time.monotonic()
        age = s.last_data_age()
        if age is None:
            return (s.connected_since or 0.0) + self.no_data_timeout - time.time()
        return self.no_data_timeout - age

    def lband_status(self) -> dict:
        s = self.stats
        return {
            "mode": s.lband_mode,
            "device": s.lband_device,
            "device_state": s.lband_device_state,
            "frequency_hz": s.lband_frequency_hz,
            "d9s_state": s.d9s_state,
            "pmp_frames": s.pmp_frames,
        }

    def bytes_per_second(self) -> float:
        """Input rate over the last ~10 s."""
        now = time.monotonic()
        self._rate_samples.append((now, self.stats.input_bytes))
        while len(self._rate_samples) > 2 and now - self._rate_samples[1][0] >= 10:
            self._rate_samples.pop(0)
        t0, b0 = self._rate_samples[0]
        return round((self.stats.input_bytes - b0) / (now - t0), 1) if now > t0 else 0.0

    def status(self) -> dict:
        s = self.stats
        now = time.time()
        age = s.last_data_age()
        with s.lock:
            streams = {name: dict(s.in_streams[name]) for name in STREAMS}
        return {
            "format": 1,
            "updated_at": iso(now),
            "started_at": iso(s.started_at),
            "pid": os.getpid(),
            "version": __version__,
            "healthy": self.healthy(),
            "input": {
                "type": s.input_type,
                "state": s.input_state,
                "endpoint": s.endpoint,
                "connected_since": iso(s.connected_since),
                "last_data_at": iso(s.last_data_at),
                "last_data_age": None if age is None else round(age, 1),
                "bytes": s.input_bytes,
                "frames": s.input_frames,
                "reconnects": s.reconnects,
                "garbage_bytes": s.garbage_bytes,
                "last_error": s.input_error,
            },
            "output": {
                "type": s.output_type,
                "target": s.target,
                "state": s.output_state,
                "bytes": s.output_bytes,
                "frames": s.output_frames,
                "dropped_frames": s.dropped_frames,
                "dropped_bytes": s.dropped_bytes,
                "cut_frames_dropped": s.cut_frames_dropped,
            },
            "streams": streams,
            "bytes_per_second": self.bytes_per_second(),
            "keys": {**key_status(self.keys(), now), "last_sent_at": iso(s.keys_last_sent_at)},
            "certificate_not_after": iso(self.certificate_not_after),
            "receiver": {"config_state": s.receiver_state, "resets_detected": s.receiver_resets},
            "region": dict(s.region),
            "lband": self.lband_status(),
            "last_error": s.last_error,
        }

    def write_status(self, path: str, redactor: Redactor | None = None) -> bool:
        """Atomic replace: readers never see a partial file. `redactor` filters every string (the log's filter).
        Returns the `healthy` it wrote. One fixed temporary name beside it (the main loop is the one writer) and
        plain descriptors: a write after a long sleep then costs ~0.2 ms of CPU instead of ~0.6 ms (mkstemp, a text
        wrapper and a makedirs each time)."""
        status = self.status()
        doc = (redactor.redact_json(status, status_text) if redactor else status_text(status)).encode()
        folder, name = os.path.split(os.path.abspath(path))
        tmp = os.path.join(folder, f".{name}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(tmp, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, flags, 0o644)
        try:
            try:
                os.fchmod(fd, 0o644)  # readable by the status readers whatever the umask
                view = memoryview(doc)
                while view:  # no fsync: runtime state on /run, replaced often (a disk would commit each time)
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return status["healthy"]

    def summary(self) -> str:
        """One line for the log every summary_interval: rates since the previous summary, no per-message noise."""
        s = self.stats
        now = time.monotonic()
        prev = self._summary_last or (now, s.input_bytes, s.output_frames)
        self._summary_last = (now, s.input_bytes, s.output_frames)
        span = max(now - prev[0], 1e-9)
        age = s.last_data_age()
        return (
            f"summary: input {s.input_type} {s.input_state} ({s.endpoint}), "
            f"{(s.input_bytes - prev[1]) / span:.0f} B/s, {s.output_frames - prev[2]} frames out "
            f"(total in {s.input_bytes} B/{s.input_frames} frames, out {s.output_bytes} B), "
            f"dropped {s.dropped_frames}, reconnects {s.reconnects}, "
            f"last data {'never' if age is None else f'{age:.1f} s ago'}, output {s.output_state}, "
            f"receiver {s.receiver_state}, {self._region_summary()}healthy {self.healthy()}"
        )

    def _region_summary(self) -> str:
        s = self.stats
        r = s.region
        out = ""
        if r["selected"]:
            out = f"region {r['selected']} ({r['source']}), "
        elif s.region_needed:
            out = f"region none (waiting, plan: {', '.join(r['available']) or '-'}), "
        if s.lband_mode == "d9s":
            out += f"lband d9s {s.d9s_state} {s.lband_frequency_hz or '-'} Hz, {s.pmp_frames} PMP frames, "
        elif s.lband_mode == "keys_only":
            out += "lband keys only, "
        return out


class MetricsCollector:
    """Contract 4 metrics, computed from Stats at scrape time."""

    def __init__(self, health: Health):
        self.health = health

    def collect(self):
        s = self.health.stats
        p = PREFIX

        def gauge(name, doc, value):
            g = GaugeMetricFamily(p + name, doc)
            g.add_metric([], value)
            return g

        def counter(name, doc, value):
            c = CounterMetricFamily(p + name, doc)
            c.add_metric([], value)
            return c

        def per_stream(name, doc, table, field):
            c = CounterMetricFamily(p + name, doc, labels=["stream"])
            for stream in STREAMS:
                c.add_metric([stream], table[stream][field])
            return c

        yield gauge("up", "The forwarder process is running.", 1)
        yield gauge("healthy", "1 while corrections flow from the input to an open output.", int(self.health.healthy()))
        yield gauge("input_connected", "1 while the input is connected.", int(s.input_state == "connected"))
        with s.lock:
            ins = {k: dict(v) for k, v in s.in_streams.items()}
            outs = {k: dict(v) for k, v in s.out_streams.items()}
        yield per_stream("input_bytes", "Bytes received per stream.", ins, "bytes")
        yield per_stream("input_frames", "Whole frames received per stream.", ins, "frames")
        yield counter("output_bytes", "Bytes written to the output.", s.output_bytes)
        yield per_stream("output_frames", "Frames written to the output per stream.", outs, "frames")
        yield counter("frames_dropped", "Frames dropped because the output queue was full.", s.dropped_frames)
        yield counter(
            "output_cut_frames_dropped",
            "Rests of cut frames dropped because the receiver was replaced (re-plug, power cycle) or reset meanwhile.",
            s.cut_frames_dropped,
        )
        yield counter("reconnects", "Input reconnects.", s.reconnects)
        yield counter(
            "input_garbage_bytes", "Input bytes discarded as no valid frame (corrupt or cut off).", s.garbage_bytes
        )
        age = s.last_data_age()
        yield gauge(
            "last_data_age_seconds", "Seconds since the last input data (-1 before any).", -1 if age is None else age
        )
        kv = GaugeMetricFamily(
            p + "key_valid_until_timestamp_seconds", "End of validity of the dynamic keys.", labels=["key"]
        )
        for name, key in self.health.keys().items():
            kv.add_metric([name], key.valid_until)
        yield kv
        if self.health.certificate_not_after is not None:
            yield gauge(
                "certificate_not_after_timestamp_seconds",
                "Client certificate expiry.",
                self.health.certificate_not_after,
            )
        yield gauge(
            "receiver_configured",
            "1 once the receiver acknowledged its configuration.",
            int(s.receiver_state == "applied"),
        )
        yield counter("receiver_resets", "Receiver resets detected.", s.receiver_resets)
        region = GaugeMetricFamily(p + "region_info", "1 for the chosen region.", labels=["region", "source"])
        if s.region["selected"]:
            region.add_metric([s.region["selected"], s.region["source"] or ""], 1)
        yield region
        yield counter("lband_pmp_frames", "UBX-RXM-PMP frames relayed from the NEO-D9S.", s.pmp_frames)
        yield gauge("start_time_seconds", "Start time of the forwarder (Unix seconds).", s.started_at)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        """No line per scrape."""


class MetricsServer(ThreadingMixIn, WSGIServer):
    """prometheus_client's server, but its thread sleeps on the listening socket until a scrape (prometheus_client's
    own wakes twice a second to look for a shutdown request); `shutdown` wakes it with a connection."""

    daemon_threads = True

    def serve(self) -> None:
        self.serve_forever(poll_interval=None)

    def shutdown(self) -> None:
        stopper = threading.Thread(target=super().shutdown, name="metrics-stop", daemon=True)
        stopper.start()  # sets the shutdown request, then waits for the loop to end
        host, port = self.server_address[:2]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 - a wildcard is reached locally
        while stopper.is_alive():
            with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
                pass
            stopper.join(0.05)


def start_metrics(health: Health, address: str, port: int):
    """Serve /metrics; returns (server, bound port)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(health))
    family = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class = type("MetricsServer", (MetricsServer,), {"address_family": family})
    server = make_server(address, port, make_wsgi_app(registry), server_class, handler_class=_QuietHandler)
    threading.Thread(target=server.serve, name="metrics", daemon=True).start()
    return server, server.server_address[1]
