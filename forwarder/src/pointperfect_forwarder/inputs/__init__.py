"""Correction inputs (MQTT, NTRIP): the shared thread, reconnect and watchdog machinery, and their TLS."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from typing import Any, Protocol

from ..backoff import Backoff
from ..framing import Frame
from ..stats import Stats, error_text
from ..worker import Worker

log = logging.getLogger(__name__)
AUTH_FAILED = "credentials rejected: re-run provisioning"


class Pipeline(Protocol):
    """What an input needs from the rest of the forwarder."""

    output_ready: threading.Event

    def submit(self, frame: Frame, priority: bool = False) -> None: ...

    def submit_many(self, frames: list[Frame]) -> None: ...

    def new_keys(self, frame: Frame) -> None: ...

    def gga(self) -> bytes | None: ...

    def assistnow_full_wanted(self) -> bool: ...

    def assistnow_full_done(self) -> None: ...

    def correction_topic(self) -> str | None: ...

    def frequencies(self, payload: bytes) -> None: ...


def tls_context(ca_file: str | None, certificate: str | None = None, private_key: str | None = None) -> ssl.SSLContext:
    """Verified server (given CA or the system trust store), TLS 1.2 or later; with `certificate`, our client
    certificate (mutual TLS)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is not None:
        ctx.load_cert_chain(certificate, private_key)
    return ctx


class Input(Worker):
    """Base of an input thread: waits for the output, connects, runs a session, backs off, repeats until stopped.
    `cfg` is the input's resolved settings (config.MqttSettings, config.NtripSettings)."""

    kind = "none"

    def __init__(
        self,
        settings: Any,
        ca_file: str | None,
        stats: Stats,
        pipeline: Pipeline,
        *,
        backoff: Backoff,
        no_data_timeout: float,
    ):
        super().__init__(f"input-{self.kind}")
        self.cfg = settings
        self.ca_file = ca_file
        self.stats = stats
        self.pipeline = pipeline
        self.backoff = backoff
        self.no_data_timeout = no_data_timeout
        self._log = logging.getLogger(type(self).__module__)  # the input's own logger names its log lines
        # a session sleeps on its socket until data or its next deadline; `wake` (stop, a region change) ends that
        self._waker_r, self._waker_w = socket.socketpair()
        self._waker_r.setblocking(False)
        self._waker_w.setblocking(False)
        self.turns = 0  # session loop iterations (tests bound them per message: no polling)

    def wake(self) -> None:
        """End the session's wait now (from any thread)."""
        with contextlib.suppress(OSError):
            self._waker_w.send(b"\0")

    def _wake(self) -> None:
        self.wake()

    def wait_for(self, sock: socket.socket, timeout: float, write: bool = False) -> tuple[bool, bool]:
        """Sleep until `sock` is readable or (with `write`) writable, `timeout` s passed, or `wake` was called;
        returns (readable, writable). Decrypted TLS bytes already buffered count as readable."""
        self.turns += 1
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True, False
        ready, writable, _errored = select.select([sock, self._waker_r], [sock] if write else [], [], max(0.0, timeout))
        if self._waker_r in ready:
            with contextlib.suppress(OSError):
                self._waker_r.recv(4096)
        return sock in ready, bool(writable)

    def _stopped(self) -> None:
        self.stats.set_input("stopped")
        if not self.alive():
            self._waker_r.close()
            self._waker_w.close()

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

    def silence_left(self, since: float, limit: float, now: float | None = None) -> float:
        """Seconds until `too_silent(since, limit)` turns True, if no data comes (a hair later: it tests `>`)."""
        return limit - self.silent_for(since, now) + 0.01

    def silent_for(self, since: float, now: float | None = None) -> float:
        """Seconds without data in this session (`since` = monotonic session start) at `now` (monotonic, else now)."""
        last = self.stats.last_data_mono
        return (time.monotonic() if now is None else now) - max(since, last or since)

    # --- what a session reports (the input state, `last_error` and one warning) ------------------------------------

    def report(self, state: str, message: str) -> None:
        """The input's state and why, in the status and in the log."""
        self.stats.set_input(state, message)
        self._log.warning("%s input: %s", self.kind, message)

    def connect_failed(self, endpoint: str, exc: BaseException) -> None:
        self.report("connecting", f"connect to {endpoint} failed: {error_text(exc)}")

    def too_silent(self, since: float, limit: float, what: str = "", now: float | None = None) -> bool:
        """The no-data watchdog: True (reported, the session is to end) after more than `limit` s without data since
        `since`; `what` words the start when it is not the last data (" since connecting")."""
        silent = self.silent_for(since, now)
        if silent <= limit:
            return False
        self.report("backoff", f"no data for {silent:.0f} s{what}: reconnecting")
        return True
