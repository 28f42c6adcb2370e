"""CFG-VALSET delivery to one u-blox device (the receiver, the NEO-D9S): ACK checked, retried, reset debounced."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .stats import Stats

log = logging.getLogger(__name__)

ACK_TIMEOUT = 2.0  # seconds to wait for ACK-ACK of a CFG-VALSET
CONFIG_ATTEMPTS = 3  # VALSET tries before the state becomes failed
CONFIG_RETRY = 60.0  # seconds before trying again after a failure
RESET_DEBOUNCE = 5.0  # one boot banner is several lines: count one reset
BOOT_MARKERS = (b"u-blox AG", b"HW UBX", b"ROM BASE", b"ROM CORE", b"FWVER=", b"PROTVER=", b"boot", b"Boot", b"RESET")


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
