"""L-band mode: the NEO-D9S on its own serial port, tuned from /pp/frequencies/Lb; its UBX-RXM-PMP frames are relayed
whole to the main receiver through the one writer."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable

from .backoff import Backoff
from .framing import NMEA, UBX, Frame, Framer
from .outputs import Output, SerialOutput
from .stats import Stats
from .valset import Device, Valset, cfg_valset
from .worker import Worker

log = logging.getLogger(__name__)
RXM_PMP = b"\x02\x72"  # UBX-RXM-PMP class and id
WRITE_TIMEOUT = 2.0  # seconds a CFG-VALSET may take to go out to the NEO-D9S
_MSGOUT = {
    "USB": "CFG_MSGOUT_UBX_RXM_PMP_USB",
    "UART1": "CFG_MSGOUT_UBX_RXM_PMP_UART1",
    "UART2": "CFG_MSGOUT_UBX_RXM_PMP_UART2",
}
# PointPerfect L-band channel settings (SparkFun_u-blox_GNSS_v3 NEO-D9S examples, mazgch HPG LBAND.h, XPLR
# xplr_lband.c). Some SparkFun docs show SERVICE_ID 50821 / DESCRAMBLER_INIT 23560; the service's 21845/26969 apply.
PMP_SETTINGS = (
    ("CFG_PMP_SEARCH_WINDOW", 2200),
    ("CFG_PMP_USE_SERVICE_ID", 0),
    ("CFG_PMP_SERVICE_ID", 21845),
    ("CFG_PMP_DATA_RATE", 2400),
    ("CFG_PMP_USE_DESCRAMBLER", 1),
    ("CFG_PMP_DESCRAMBLER_INIT", 26969),
    ("CFG_PMP_USE_PRESCRAMBLING", 0),
    ("CFG_PMP_UNIQUE_WORD", 0xE15AE893E15AE893),
)
LBAND_HZ = (1.0e9, 2.0e9)  # plausible L-band centre frequencies


def d9s_valset(frequency_hz: int, port: str) -> bytes:
    """CFG-VALSET (RAM layer) tuning the NEO-D9S and enabling UBX-RXM-PMP on the port the forwarder reads."""
    return cfg_valset([("CFG_PMP_CENTER_FREQUENCY", int(frequency_hz)), *PMP_SETTINGS, (_MSGOUT[port], 1)])


def _hz(value: object) -> int | None:
    """A frequency in MHz (the service's strings, e.g. "1556.29"), kHz or Hz, as a number or string, to Hz."""
    if isinstance(value, dict):
        for key in ("current", "value", "frequency", "freq"):
            if key in value:
                return _hz(value[key])
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    scale = 1e6 if number < 1e4 else 1e3 if number < 1e7 else 1.0
    hz = round(number * scale)
    return hz if LBAND_HZ[0] <= hz <= LBAND_HZ[1] else None


def parse_frequencies(payload: bytes) -> dict[str, int]:
    """/pp/frequencies/Lb to region -> Hz. The service's shape (pygnssutils tests `testparsemqttfreq`, SparkFun
    NEO-D9S docs) is {"frequencies": {"us": {"current": {"value": "1556.29"}}, ...}}; numbers, a bare
    {"us": "1556.29"} and a list of {"region", "frequency"} objects are accepted too. Raises ValueError."""
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    if isinstance(obj, dict) and isinstance(obj.get("frequencies"), (dict, list)):
        obj = obj["frequencies"]
    if isinstance(obj, list):
        obj = {
            str(item.get("region") or item.get("name")): item
            for item in obj
            if isinstance(item, dict) and (item.get("region") or item.get("name"))
        }
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    table = {str(region).lower(): _hz(value) for region, value in obj.items()}
    table = {region: hz for region, hz in table.items() if hz is not None}
    if not table:
        raise ValueError("no L-band frequency in it")
    return table


class D9s(Device, Worker):
    """The NEO-D9S: opened (and reopened after an unplug) in its own thread, tuned with CFG-VALSET (ACK checked, 3
    tries, then `failed` and a retry after 60 s), re-tuned after a reset (boot banner), a frequency change or
    `no_data_timeout` s without PMP data. Each UBX-RXM-PMP frame goes to `submit` whole."""

    def __init__(
        self,
        lband: dict,
        stats: Stats,
        submit: Callable[[Frame], None],
        frequency: Callable[[], int | None],
        *,
        backoff: Backoff,
        no_data_timeout: float,
        output: Output | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        super().__init__("lband")
        self.port = lband["port"]
        self.output = output or SerialOutput(lband["device"], lband["baudrate"])
        self.stats = stats
        self._submit = submit
        self._frequency = frequency
        self.backoff = backoff
        self.no_data_timeout = no_data_timeout
        self._clock = clock
        self.framer = Framer((UBX, NMEA))
        self.is_open = False
        self._tuned: int | None = None  # the frequency of the last acknowledged (or pending) VALSET
        self.valset = Valset(stats, lambda state: setattr(stats, "d9s_state", state), "NEO-D9S", "lband:", clock=clock)
        self._last_data = 0.0  # clock() of the last RXM-PMP frame or of the last ACK
        self._silent_logged = False
        stats.lband_device_state = "closed"

    # --- thread ----------------------------------------------------------------------------------------------------

    def _stopped(self) -> None:
        self.close()

    def _main(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            if not self.is_open and not self.open():
                self._stop.wait(self.backoff.next_delay())
                continue
            try:
                data = self.output.read()
            except OSError as exc:
                log.warning("lband: NEO-D9S %s failed (%s), reopening", self.output.target, exc)
                self.close()
                continue
            if data:
                self.feed(data)
            self.tick()

    def open(self) -> bool:
        try:
            self.output.open()
        except OSError as exc:
            if self.backoff.attempt == 0:
                log.warning("lband: NEO-D9S %s: cannot open: %s", self.output.target, exc)
            self.stats.error(f"NEO-D9S {self.output.target}: {exc}")
            return False
        log.info("lband: NEO-D9S %s open", self.output.target)
        self.backoff.reset()
        self.is_open = True
        self.stats.lband_device_state = "open"
        self.framer.reset()
        self._retune("opened")  # a re-plugged D9S starts untuned
        return True

    def close(self) -> None:
        self.output.close()
        self.is_open = False
        self.stats.lband_device_state = "closed"

    # --- what the D9S sends (Device hooks) -------------------------------------------------------------------------

    def _ubx(self, raw: bytes) -> None:
        if raw[2:4] == RXM_PMP:
            self.stats.pmp_in(len(raw))
            self._last_data = self._clock()
            self._silent_logged = False
            self._submit(Frame(UBX, raw))

    def _applied(self) -> None:
        self.stats.d9s_applied_mono = time.monotonic()
        self._last_data = self._clock()  # the silence limit runs from here
        log.info("lband: NEO-D9S tuned to %d Hz (RXM-PMP on %s)", self._tuned, self.port)

    def _after_reset(self, why: str) -> None:
        log.warning("lband: NEO-D9S reset detected (%s): tuning it again", why)
        self._retune(why)

    def _retune(self, why: str) -> None:
        log.debug("lband: NEO-D9S to be tuned (%s)", why)
        self._tuned = None
        self.valset.request()

    # --- periodic work ---------------------------------------------------------------------------------------------

    def tick(self) -> None:
        now = self._clock()
        want = self._frequency()
        s = self.stats
        if want is None:
            if s.d9s_state == "applied":
                self._retune("no frequency")
            return
        if self._tuned is not None and want != self._tuned:
            log.info("lband: frequency changed %d -> %d Hz", self._tuned, want)
            self._retune("frequency change")
        if s.d9s_state == "applied":
            last = self._last_data
            if now - last > self.no_data_timeout:
                # a D9S that reset without a banner is silent: tune it again (harmless for one without signal)
                (log.debug if self._silent_logged else log.warning)(
                    "lband: no RXM-PMP for %.0f s: tuning the NEO-D9S again", now - last
                )
                self._silent_logged = True
                self._retune("silent")
        if not self.valset.due():
            return
        self._tuned = want
        self._send(d9s_valset(want, self.port))

    def _send(self, data: bytes) -> None:
        """Write a whole frame to the D9S (its own port: this thread is its only writer)."""
        view, done = memoryview(data), 0
        deadline = time.monotonic() + WRITE_TIMEOUT
        try:
            while done < len(view):
                done += self.output.write_some(view[done:])
                if done < len(view) and not self.output.wait_writable(deadline - time.monotonic()):
                    raise OSError("write timed out")
        except OSError as exc:
            log.warning("lband: NEO-D9S %s: write failed (%s), reopening", self.output.target, exc)
            self.close()
