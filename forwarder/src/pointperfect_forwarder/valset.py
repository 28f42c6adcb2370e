"""A u-blox device the forwarder configures (the receiver, the NEO-D9S): CFG-VALSET built, ACK checked, retried;
reset signs recognised and debounced; the frames it sends dispatched to the device's own handling."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pyubx2 import UBXMessage

from .framing import NMEA, UBX, Frame, Framer
from .stats import Stats

log = logging.getLogger(__name__)

ACK_TIMEOUT = 2.0  # seconds to wait for ACK-ACK of a CFG-VALSET
CONFIG_ATTEMPTS = 3  # VALSET tries before the state becomes failed
CONFIG_RETRY = 60.0  # seconds before trying again after a failure
RESET_DEBOUNCE = 5.0  # one boot banner is several lines: count one reset
BOOT_MARKERS = (b"u-blox AG", b"HW UBX", b"ROM BASE", b"ROM CORE", b"FWVER=", b"PROTVER=", b"boot", b"Boot", b"RESET")


def cfg_valset(data: list[tuple[str, int]]) -> bytes:
    """CFG-VALSET of (key name, value) pairs to the RAM layer (lost on a reset: hence the reset detection)."""
    return UBXMessage.config_set(1, 0, data).serialize()


def is_valset_ack(raw: bytes) -> bool | None:
    """True for UBX-ACK-ACK, False for UBX-ACK-NAK of a CFG-VALSET, None for any other frame."""
    if raw[2:4] in (b"\x05\x01", b"\x05\x00") and raw[6:8] == b"\x06\x8a":
        return raw[2:4] == b"\x05\x01"
    return None


def is_boot_notice(raw: bytes, nmea: bool) -> bool:
    """A boot banner line (NMEA TXT) or boot notice (UBX-INF-NOTICE): the device has just reset."""
    kind = raw[3:6] == b"TXT" if nmea else raw[2:4] == b"\x04\x02"
    return kind and any(m in raw for m in BOOT_MARKERS)


class Valset:
    """State `pending` -> `applied` on ACK; after CONFIG_ATTEMPTS tries without one (or a NAK) `failed`, and pending
    again CONFIG_RETRY s later. `publish(state)` mirrors the state into the stats; `name` and `nak_hint` word the
    errors ("receiver rejected CFG-VALSET (NAK): <hint>")."""

    def __init__(
        self,
        stats: Stats,
        publish: Callable[[str], None],
        name: str,
        log_prefix: str,
        *,
        nak_hint: str = "",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stats = stats
        self._publish = publish
        self.name = name
        self._prefix = log_prefix
        self._nak_hint = nak_hint
        self._clock = clock
        self.state = "pending"
        self.attempts = 0
        self._next_action = 0.0
        self._last_reset = -RESET_DEBOUNCE
        publish(self.state)

    def _set(self, state: str) -> None:
        self.state = state
        self._publish(state)

    def request(self) -> None:
        """Send (again) from the next tick on."""
        self._set("pending")
        self.attempts = 0
        self._next_action = self._clock()

    def reset_detected(self) -> bool:
        """A reset sign (several per boot): True once per RESET_DEBOUNCE s, and then the configuration is due again."""
        now = self._clock()
        if now - self._last_reset < RESET_DEBOUNCE:
            return False
        self._last_reset = now
        return True

    def ack(self, ok: bool) -> bool:
        """ACK-ACK (ok) or ACK-NAK of our VALSET; True when it applied the configuration."""
        if self.state != "pending":
            return False
        if ok:
            self._set("applied")
            return True
        self._set("failed")
        self._next_action = self._clock() + CONFIG_RETRY
        hint = f": {self._nak_hint}" if self._nak_hint else ""
        self.stats.error(f"{self.name} rejected CFG-VALSET (NAK){hint}")
        log.warning("%s CFG-VALSET rejected (NAK)", self._prefix)
        return False

    def next_due(self) -> float:
        """clock() time `due` may next say True (infinity while applied: only a request or a reset starts again)."""
        return self._next_action if self.state in ("pending", "failed") else float("inf")

    def due(self) -> bool:
        """From the periodic tick: True when a VALSET is to be sent now (counted as one try)."""
        now = self._clock()
        if self.state not in ("pending", "failed") or now < self._next_action:
            return False
        if self.state == "failed":
            self._set("pending")
            self.attempts = 0
        if self.attempts >= CONFIG_ATTEMPTS:
            self._set("failed")
            self.stats.error(f"{self.name} did not acknowledge CFG-VALSET")
            log.warning(
                "%s no ACK to CFG-VALSET after %d tries; retrying in %.0f s", self._prefix, self.attempts, CONFIG_RETRY
            )
            self._next_action = now + CONFIG_RETRY
            return False
        self.attempts += 1
        self._next_action = now + ACK_TIMEOUT
        return True


class Device:
    """What a configured u-blox device sends, read through `framer`: a boot banner or notice is a reset (debounced by
    `valset`, then `_after_reset`), the ACK of our CFG-VALSET goes to `valset` (then `_applied`), other NMEA and UBX
    frames to `_nmea` and `_ubx`. `configure` False: the device's ACKs are not ours to count."""

    framer: Framer
    valset: Valset
    configure = True

    def feed(self, data: bytes) -> None:
        for frame in self.framer.feed(data):
            self.handle(frame)

    def handle(self, frame: Frame) -> None:
        raw = frame.data
        if frame.stream == NMEA:
            if is_boot_notice(raw, nmea=True):
                self._reset("boot banner")
            else:
                self._nmea(raw)
            return
        if frame.stream != UBX:
            return
        ack = is_valset_ack(raw)
        if ack is not None:
            if self.configure and self.valset.ack(ack):
                self._applied()
        elif is_boot_notice(raw, nmea=False):
            self._reset("boot notice")
        else:
            self._ubx(raw)

    def _reset(self, why: str) -> None:
        if self.valset.reset_detected():
            self._after_reset(why)

    def _nmea(self, raw: bytes) -> None:
        """An NMEA sentence that is no boot banner."""

    def _ubx(self, raw: bytes) -> None:
        """A UBX frame that is neither an ACK of CFG-VALSET nor a boot notice."""

    def _applied(self) -> None:
        """The device acknowledged the configuration."""

    def _after_reset(self, why: str) -> None:
        """A reset was detected (once per RESET_DEBOUNCE s)."""
