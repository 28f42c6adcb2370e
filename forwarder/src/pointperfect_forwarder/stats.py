"""Shared counters and states of the pipeline, read by the status file, the metrics and the summary log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .framing import STREAMS


def error_text(exc: BaseException) -> str:
    """An exception as the few words a status shows (`last_error`): the OS's text, else the message, else the class."""
    return getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__


class _Watched:
    """A field the status file's readers judge (states, errors, region): a new value calls `Stats.on_change`, so the
    status file is rewritten at once instead of at its next heartbeat. Counters stay plain attributes (no cost)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Stats | None, owner: type | None = None):
        return self if obj is None else obj.__dict__[self.name]

    def __set__(self, obj: Stats, value) -> None:
        fields = obj.__dict__
        changed = self.name in fields and fields[self.name] != value
        fields[self.name] = value
        if changed:
            obj.on_change()


class Stats:
    """Plain attributes updated by the pipeline threads (single writers per field); `lock` guards compound updates.
    `on_change` is called (from any thread, maybe under `lock`: it must only signal) when a watched field changes."""

    input_state = _Watched()
    input_error = _Watched()
    corrections_subscribed = _Watched()
    output_state = _Watched()
    keys_last_sent_at = _Watched()
    receiver_state = _Watched()
    receiver_resets = _Watched()
    last_error = _Watched()
    region = _Watched()
    region_needed = _Watched()
    lband_device_state = _Watched()
    lband_frequency_hz = _Watched()
    d9s_state = _Watched()

    def __init__(self, input_type: str, endpoint: str, output_type: str, target: str):
        self.on_change: Callable[[], None] = _nothing
        self.quiet_after = float("inf")  # s without data after which the next data counts as a change (healthy)
        self.lock = threading.Lock()
        self.started_at = time.time()
        # input
        self.input_type = input_type
        self.input_state = "starting"
        self.endpoint = endpoint
        self.connected_since: float | None = None
        self.last_data_at: float | None = None
        self.last_data_mono: float | None = None
        self.input_bytes = 0
        self.input_frames = 0
        self.reconnects = 0
        self.input_error: str | None = None
        self.in_streams = {s: {"frames": 0, "bytes": 0} for s in STREAMS}
        self.garbage_bytes = 0
        self.corrections_subscribed: str | None = None  # MQTT: the correction topic whose SUBACK arrived
        # output
        self.output_type = output_type
        self.target = target
        self.output_state = "closed"
        self.output_bytes = 0
        self.output_frames = 0
        self.out_streams = {s: {"frames": 0, "bytes": 0} for s in STREAMS}
        self.dropped_frames = 0
        self.dropped_bytes = 0
        self.cut_frames_dropped = 0  # rests of cut frames dropped: the receiver was replaced or reset meanwhile
        self.output_error: str | None = None
        # keys and receiver
        self.keys_last_sent_at: float | None = None
        self.receiver_state = "disabled"
        self.receiver_resets = 0
        self.last_error: str | None = None
        # region (Contract 3 `region`): `region_needed` = corrections wait for a chosen region
        self.region: dict = {"selected": None, "source": None, "available": [], "topic": None}
        self.region_needed = False
        # L-band (Contract 3 `lband`)
        self.lband_mode = "off"
        self.lband_device: str | None = None
        self.lband_device_state: str | None = None
        self.lband_frequency_hz: int | None = None
        self.d9s_state: str | None = None
        self.d9s_applied_mono: float | None = None
        self.pmp_frames = 0
        self.pmp_bytes = 0
        self.last_pmp_mono: float | None = None

    def error(self, message: str) -> None:
        self.last_error = message

    def set_input(self, state: str, error: str | None = None) -> None:
        with self.lock:
            # set at the session's first `connected`; kept while a later subscription is awaited (`subscribing`)
            if state == "connected" and self.connected_since is None:
                self.connected_since = time.time()
            elif state not in ("connected", "subscribing"):
                self.connected_since = None
            self.input_state = state
            if error is not None:
                self.input_error = error
                self.last_error = error

    def data_in(self, stream: str, size: int) -> None:
        now = time.monotonic()
        with self.lock:
            self.input_bytes += size
            self.input_frames += 1
            _count(self.in_streams[stream], size)
            self.last_data_at = time.time()
            previous, self.last_data_mono = self.last_data_mono, now
        if previous is None or now - previous > self.quiet_after:
            self.on_change()  # the first data, or data again after a silence that made the forwarder unhealthy

    def data_out(self, stream: str, size: int) -> None:
        with self.lock:
            self.output_bytes += size
            self.output_frames += 1
            _count(self.out_streams[stream], size)

    def pmp_in(self, size: int) -> None:
        """A UBX-RXM-PMP frame from the NEO-D9S."""
        now = time.monotonic()
        with self.lock:
            self.pmp_frames += 1
            self.pmp_bytes += size
            previous, self.last_pmp_mono = self.last_pmp_mono, now
        if previous is None or now - previous > self.quiet_after:
            self.on_change()

    def garbage(self, size: int) -> None:
        """Input bytes that were no valid frame (corrupt or cut off), discarded by the framer."""
        with self.lock:
            self.garbage_bytes += size

    def dropped(self, size: int) -> None:
        with self.lock:
            self.dropped_frames += 1
            self.dropped_bytes += size

    def cut_frame_dropped(self) -> None:
        with self.lock:
            self.cut_frames_dropped += 1

    def last_data_age(self, now_mono: float | None = None) -> float | None:
        if self.last_data_mono is None:
            return None
        return max(0.0, (now_mono or time.monotonic()) - self.last_data_mono)


def _nothing() -> None:
    """The default `on_change`: no status file to rewrite."""


def _count(entry: dict[str, int], size: int) -> None:
    """One frame of `size` bytes in a per-stream entry (under Stats.lock)."""
    entry["frames"] += 1
    entry["bytes"] += size
