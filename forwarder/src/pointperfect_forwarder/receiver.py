"""The receiver side of the serial port: GGA for NTRIP, reset detection, CFG-VALSET with ACK, key presence polls."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .framing import NMEA, RTCM, UBX, Frame, Framer
from .keys import keys_in_frame, spartnkey_poll
from .schedule import on_grid
from .stats import Stats
from .valset import Device, Valset, cfg_valset

log = logging.getLogger(__name__)

KEY_POLL_INTERVAL = 30.0  # seconds between RXM-SPARTNKEY polls (a receiver that lost its keys has reset)
BATCH_MAX = 10.0  # seconds the reader lets the receiver's output accumulate at most when nothing waits for it
BATCH_MIN = 0.05  # seconds at least between two such reads (a receiver sending fast is read in chunks)
TTY_BUDGET = 2048  # bytes to let accumulate at most: half of the kernel's 4 KiB tty read buffer (n_tty)
_INPROT = {"USB": "CFG_USBINPROT_SPARTN", "UART1": "CFG_UART1INPROT_SPARTN", "UART2": "CFG_UART2INPROT_SPARTN"}
_SOURCE = {"ip": 0, "lband": 1}


def valset_frame(port: str, source: str) -> bytes:
    """CFG-VALSET (RAM layer): SPARTN input on the port the forwarder writes to, and the correction source."""
    return cfg_valset([("CFG_SPARTN_USE_SOURCE", _SOURCE[source]), (_INPROT[port], 1)])


def fixed_gga(position: dict) -> bytes:
    """A GGA for a fixed position (receivers that output none), built with pynmeagps; time is now. Imported here:
    only a gateway with a fixed position needs it (~0.6 MB of RSS)."""
    from pynmeagps import GET as NMEA_GET  # noqa: PLC0415 - see docstring
    from pynmeagps import NMEAMessage  # noqa: PLC0415 - see docstring

    msg = NMEAMessage(
        "GP",
        "GGA",
        NMEA_GET,
        lat=float(position["lat"]),
        lon=float(position["lon"]),
        quality=1,
        numSV=12,
        HDOP=1.0,
        alt=float(position.get("alt", 0.0)),
        altUnit="M",
        sep=0.0,
        sepUnit="M",
        diffAge="",
        diffStation="",
    )
    return msg.serialize()


def _degrees(dmm: bytes) -> float:
    """NMEA (d)ddmm.mmmm to unsigned decimal degrees, rounded as pynmeagps' dmm2ddd does."""
    dp = dmm.find(b".")
    if dp < 4:
        raise ValueError("not (d)ddmm.mmmm")
    return round(abs(float(dmm[: dp - 2])) + float(dmm[dp - 2 :]) / 60, 10)


def gga_position(raw: bytes) -> tuple[float, float] | None:
    """(lat, lon) in signed decimal degrees of a GGA sentence with a fix (quality > 0), else None. The framer checked
    its checksum; parsed here, not with pynmeagps: a GGA a second is most of an idle gateway's work."""
    fields = raw.split(b"*", 1)[0].split(b",")
    if len(fields) < 7:
        return None
    try:
        if int(fields[6] or 0) <= 0:
            return None
        lat = _degrees(fields[2]) * (-1 if fields[3] == b"S" else 1)
        lon = _degrees(fields[4]) * (-1 if fields[5] == b"W" else 1)
    except ValueError:
        return None
    return lat, lon


class ReadPace:
    """When the reader may read the receiver's output in batches: at most BATCH_MAX s apart (the delay of reset
    detection and of a new position), and sooner when the receiver sends fast, so the tty buffer never fills."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._last = clock()
        self._wait = BATCH_MAX

    def read(self, size: int) -> None:
        """`size` bytes were read now: the next batch is due when about TTY_BUDGET bytes will have come."""
        now = self._clock()
        elapsed, self._last = now - self._last, now
        self._wait = BATCH_MAX if size <= 0 else min(BATCH_MAX, max(BATCH_MIN, elapsed * TTY_BUDGET / size))

    def wait(self) -> float:
        """Seconds until the next batch read; the longest batches end on the process's grid (`on_grid`)."""
        now = self._clock()
        if self._wait >= BATCH_MAX:
            return on_grid(now, BATCH_MAX)
        return max(0.0, self._last + self._wait - now)


class Receiver(Device):
    """Fed with what the receiver sends; asks the writer (priority queue) to send config, keys and polls."""

    def __init__(
        self,
        stats: Stats,
        send: Callable[[Frame], None],
        on_reset: Callable[[str], None],
        *,
        configure: bool,
        port: str = "USB",
        source: str = "ip",
        have_keys: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
        wake: Callable[[], None] = lambda: None,
    ):
        self.stats = stats
        self._wake = wake  # ends the reading thread's wait: a VALSET was requested from another thread
        self._send = send
        self._on_reset = on_reset
        self.configure = configure
        self.port = port
        self.source = source
        self._have_keys = have_keys
        self._clock = clock
        self.framer = Framer((NMEA, UBX, RTCM))
        self.last_gga: bytes | None = None
        self.last_gga_at: float | None = None
        self.last_fix: tuple[float, float, float] | None = None  # (lat, lon, clock()) of the last good GGA
        self._ggas: list[bytes] = []  # the GGAs of the batch being fed
        self._next_poll = clock() + on_grid(clock(), KEY_POLL_INTERVAL)
        self.valset = Valset(
            stats,
            lambda state: setattr(stats, "receiver_state", state if configure else "disabled"),
            "receiver",
            "receiver:",
            nak_hint="is it a SPARTN-capable receiver?",
            clock=clock,
        )

    # --- events ----------------------------------------------------------------------------------------------------

    def output_opened(self) -> None:
        """A (re)opened port may be a new or power-cycled receiver: configure it again."""
        self.framer.reset()
        self.request_config()

    def request_config(self) -> None:
        if self.configure:
            self.valset.request()
            self._wake()

    # --- what the receiver sends (Device hooks) ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """A batch of what the receiver sent: only its newest GGA with a fix counts (the position, the GGA for the
        caster), so the GGAs are parsed newest first once the batch is handled, until one has a fix."""
        self._ggas = []
        super().feed(data)
        for raw in reversed(self._ggas):
            if self._gga(raw):
                break

    def _nmea(self, raw: bytes) -> None:
        if raw[3:6] == b"GGA":
            self._ggas.append(raw)

    def _ubx(self, raw: bytes) -> None:
        if raw[2:4] == b"\x02\x36" and len(raw) >= 12 and keys_in_frame(raw) == 0 and self._have_keys():
            self._reset("receiver holds no keys")

    def _applied(self) -> None:
        log.info("receiver: configuration applied (SPARTN input on %s, source %s)", self.port, self.source)

    def _gga(self, raw: bytes) -> bool:
        """Take a GGA with a fix as the position (True); one without a fix changes nothing (False)."""
        fix = gga_position(raw)
        if fix is None:
            return False
        self.last_gga = raw
        self.last_gga_at = self._clock()
        self.last_fix = (*fix, self.last_gga_at)
        return True

    def _after_reset(self, why: str) -> None:
        self.stats.receiver_resets += 1
        log.warning("receiver: reset detected (%s): sending keys and configuration again", why)
        self.request_config()
        self._on_reset(why)

    # --- periodic work (called from the reader loop) ---------------------------------------------------------------

    def tick(self) -> None:
        now = self._clock()
        if self.configure and self.valset.due():
            self._send(Frame(UBX, valset_frame(self.port, self.source)))
        if now >= self._next_poll:
            self._next_poll = now + on_grid(now, KEY_POLL_INTERVAL)  # with the batch reads
            if self._have_keys():
                self._send(Frame(UBX, spartnkey_poll()))

    def now(self) -> float:
        return self._clock()

    def awaiting_ack(self) -> bool:
        """A CFG-VALSET is pending: its ACK (or NAK) is read as soon as it comes."""
        return self.configure and self.valset.state == "pending"

    def next_due(self) -> float:
        """clock() time of the next periodic action (a VALSET try or retry, a key poll): `tick` is idle until then."""
        due = self._next_poll
        if self.configure:
            due = min(due, self.valset.next_due())
        return due

    def position(self, max_age: float) -> tuple[float, float, float] | None:
        """(lat, lon, clock() of the fix) of the last good GGA when at most `max_age` s old."""
        fix = self.last_fix
        return fix if fix is not None and self._clock() - fix[2] <= max_age else None

    def gga(self, grace: float, fixed: dict | None) -> bytes | None:
        """The GGA to send to a caster: the receiver's last good one within `grace` s, else the fixed position."""
        if self.last_gga is not None and self._clock() - (self.last_gga_at or 0) <= grace:
            return self.last_gga
        if fixed:
            return fixed_gga(fixed)
        return None
