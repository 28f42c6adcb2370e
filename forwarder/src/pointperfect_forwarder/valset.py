"""A u-blox device the forwarder configures (the receiver, the NEO-D9S): CFG-VALSET built, ACK checked, retried;
reset signs recognised and debounced; the frames it sends dispatched to the device's own handling."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .framing import NMEA, UBX, Frame, Framer, ubx_frame
from .stats import Stats

log = logging.getLogger(__name__)

ACK_TIMEOUT = 2.0  # seconds to wait for ACK-ACK of a CFG-VALSET
CONFIG_ATTEMPTS = 3  # VALSET tries before the state becomes failed
CONFIG_RETRY = 60.0  # seconds before trying again after a failure
RESET_DEBOUNCE = 5.0  # one boot banner is several lines: count one reset
BOOT_MARKERS = (b"u-blox AG", b"HW UBX", b"ROM BASE", b"ROM CORE", b"FWVER=", b"PROTVER=", b"boot", b"Boot", b"RESET")


# The configuration items the forwarder sets, with their key ids (u-blox interface descriptions; the same ids as
# pyubx2's configuration database, which test_valset checks). Bits 28-30 of an id give its value's size.
CFG_KEYS = {
    "CFG_SPARTN_USE_SOURCE": 0x20A70001,
    "CFG_USBINPROT_SPARTN": 0x10770005,
    "CFG_UART1INPROT_SPARTN": 0x10730005,
    "CFG_UART2INPROT_SPARTN": 0x10750005,
    "CFG_PMP_CENTER_FREQUENCY": 0x40B10011,
    "CFG_PMP_SEARCH_WINDOW": 0x30B10012,
    "CFG_PMP_USE_SERVICE_ID": 0x10B10016,
    "CFG_PMP_SERVICE_ID": 0x30B10017,
    "CFG_PMP_DATA_RATE": 0x30B10013,
    "CFG_PMP_USE_DESCRAMBLER": 0x10B10014,
    "CFG_PMP_DESCRAMBLER_INIT": 0x30B10015,
    "CFG_PMP_USE_PRESCRAMBLING": 0x10B10019,
    "CFG_PMP_UNIQUE_WORD": 0x50B1001A,
    "CFG_MSGOUT_UBX_RXM_PMP_USB": 0x20910320,
    "CFG_MSGOUT_UBX_RXM_PMP_UART1": 0x2091031E,
    "CFG_MSGOUT_UBX_RXM_PMP_UART2": 0x2091031F,
}
_VALUE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8}  # bits 28-30 of a key id -> bytes of its value


def cfg_valset(data: list[tuple[str, int]]) -> bytes:
    """CFG-VALSET (RAM layer) of (key name, value) pairs; lost on a reset, hence the reset detection. Built here, not
    with pyubx2: its configuration database alone costs ~1.4 MB of RSS for these 16 ids."""
    payload = bytearray((0, 1, 0, 0))  # version 0, layers RAM, reserved
    for name, value in data:
        key = CFG_KEYS[name]
        payload += key.to_bytes(4, "little") + int(value).to_bytes(_VALUE_SIZE[(key >> 28) & 0x7], "little")
    return ubx_frame(0x06, 0x8A, bytes(payload))


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
