"""Correction inputs (MQTT, NTRIP): the shared thread, reconnect and watchdog machinery."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from ..backoff import Backoff
from ..framing import Frame
from ..stats import Stats

log = logging.getLogger(__name__)
AUTH_FAILED = "credentials rejected: re-run provisioning"


class Pipeline(Protocol):
    """What an input needs from the rest of the forwarder."""

    output_ready: threading.Event

    def submit(self, frame: Frame, priority: bool = False) -> None: ...

    def new_keys(self, frame: Frame) -> None: ...

    def gga(self) -> bytes | None: ...

    def assistnow_full_wanted(self) -> bool: ...

    def assistnow_full_done(self) -> None: ...

    def correction_topic(self) -> str | None: ...

    def frequencies(self, payload: bytes) -> None: ...


class Input:
    """Base of an input thread: waits for the output, connects, runs a session, backs off, repeats until stopped."""

    kind = "none"

    def __init__(self, stats: Stats, pipeline: Pipeline, backoff: Backoff, no_data_timeout: float):
        self.stats = stats
        self.pipeline = pipeline
        self.backoff = backoff
        self.no_data_timeout = no_data_timeout
        self.heartbeat = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"input-{self.kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.stats.set_input("stopped")

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stopping(self) -> bool:
        return self._stop.is_set()

    def _main(self) -> None:
        first = True
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            # subscribe/connect only once the output can take the first (retained) key message
            if not self.pipeline.output_ready.wait(0.5):
                continue
            if not first:
                self.stats.reconnects += 1
            first = False
            self.stats.set_input("connecting")
            delay = None
            frames_before = self.stats.input_frames
            try:
                delay = self.session()
            except Exception as exc:  # a session must never take the daemon down
                log.exception("%s input: unexpected error", self.kind)
                self.stats.set_input("backoff", f"internal error: {exc.__class__.__name__}")
            # what the session did decides the next delay: one that delivered frames starts again at backoff.initial
            delivered = self.stats.input_frames > frames_before
            fresh = self.backoff.session_ended(delivered)
            if self._stop.is_set():
                break
            if self.stats.input_state == "auth_failed":
                wait = self.backoff.at_cap()
            else:
                self.stats.set_input("backoff")
                wait = delay if delay is not None else self.backoff.next_delay()
            why = ""
            if fresh:
                what = "delivered data" if delivered else "lasted backoff.reset_after"
                why = f" (the session {what}: backoff restarts)"
            log.info("%s input: reconnecting in %.1f s%s", self.kind, wait, why)
            self._stop.wait(wait)

    def session(self) -> float | None:
        """One connection, until it ends; returns an explicit delay or None for the normal backoff."""
        raise NotImplementedError

    def silent_for(self, since: float) -> float:
        """Seconds without data in this session (`since` = monotonic session start)."""
        last = self.stats.last_data_mono
        return time.monotonic() - max(since, last or since)
