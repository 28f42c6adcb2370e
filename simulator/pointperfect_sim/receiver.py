"""A u-blox ZED-F9P-like receiver on a pseudo-terminal: records what the host writes, answers UBX, emits GGA.

The forwarder opens `device_path` as its serial port. With `link_path`, a symlink at that stable path points at the
current pty slave; `unplug()` removes it and closes the pty (the host sees EIO/EOF), `replug()` creates a fresh pty
and the symlink again, so a forwarder that reopens the same path reconnects, like a USB device re-enumerating.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import struct
import threading
import time
import tty
from pathlib import Path

from pyubx2 import SETPOLL, UBXReader

from . import frames as F

UBX_ACK, UBX_ACK_ACK, UBX_ACK_NAK = 0x05, 0x01, 0x00
UBX_CFG, UBX_CFG_VALSET, UBX_CFG_VALGET = 0x06, 0x8A, 0x8B
UBX_RXM, UBX_RXM_SPARTNKEY = 0x02, 0x36
UBX_MON, UBX_MON_VER = 0x0A, 0x04
IDLE_RESYNC = 1.0  # s without input after which a half-received candidate frame is given up (counted as garbage)


class ReceiverSim:
    """Simulated receiver. Thread-safe getters; all state is reset by `reset()` (a power cycle).

    - `frames` / `frames_of(kind)`: every valid frame the host wrote, in order (kind spartn | ubx | rtcm | nmea)
    - `garbage_bytes`: bytes that were not part of a valid frame (split, spliced or garbled frames)
    - `config`: key id -> value applied by CFG-VALSET (ACK-ACK'd; NAK'd when `nak_valset` is set)
    - `keys`: the SPARTN keys held ([{"week","tow","value"}]); RXM-SPARTNKEY sets them (no ACK), an empty one polls
    - GGA every `gga_interval` s at `position` (lat, lon, alt) with `quality` (0 = no fix); both may be changed
      while running (a moving gateway, e.g. to the US: `rx.position = (39.7, -105.0, 1600)`)
    - `pmp_frames()` / `pmp_user_data()`: the UBX-RXM-PMP frames the host relayed (L-band plans) and their SPARTN
    """

    MON_VER = (  # UBX-MON-VER answer: software, hardware, extensions
        "ROM SPG 5.10 (SIM)",
        "00190000",
        ("FWVER=HPG 1.32", "PROTVER=27.31", "MOD=ZED-F9P"),
    )

    def __init__(
        self,
        link_path: str | os.PathLike | None = None,
        *,
        position: tuple[float, float, float] = (52.0, 5.0, 10.0),
        quality: int = 1,
        gga_interval: float = 1.0,
        boot_delay: float = 0.5,
        inf_notice: bool = False,
    ) -> None:
        self.link_path = Path(link_path) if link_path else None
        self._lock = threading.RLock()
        self._position = tuple(position)
        self._quality = quality
        self.gga_interval = gga_interval
        self.boot_delay = boot_delay
        self.inf_notice = inf_notice
        self.nak_valset = False
        self.resets = 0
        self.key_loads = 0  # RXM-SPARTNKEY loads received (counts re-sends that a reset makes)
        self.plugged = False
        self._write_lock = threading.Lock()
        self._frames: list[F.Frame] = []
        self._config: dict[int, int] = {}
        self._keys: list[dict] = []
        self._splitter = F.StreamSplitter()
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path: str | None = None
        self._stop = threading.Event()
        self._stall = threading.Event()
        self._threads: list[threading.Thread] = []
        self._written = 0
        self.dropped_output = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> ReceiverSim:
        """Create the pty (and the symlink) and start the reader and GGA threads."""
        self._open_pty()
        return self

    def __enter__(self) -> ReceiverSim:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def slave_path(self) -> str:
        """Path of the current pty slave (changes on every replug)."""
        if self._slave_path is None:
            raise RuntimeError("receiver is unplugged")
        return self._slave_path

    @property
    def device_path(self) -> str:
        """What to hand to the forwarder: the stable symlink if configured, else the pty slave."""
        return str(self.link_path) if self.link_path else self.slave_path

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: a byte pipe like a CDC-ACM port
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._slave_path = os.ttyname(slave)
        if self.link_path:
            tmp = self.link_path.with_name(self.link_path.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self._slave_path)
            os.replace(tmp, self.link_path)
        self._stop.clear()
        self.plugged = True
        self._threads = [
            threading.Thread(target=self._reader, name="receiver-read", daemon=True),
            threading.Thread(target=self._gga_loop, name="receiver-gga", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _close_pty(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self._threads = []
        if self.link_path:
            with contextlib.suppress(FileNotFoundError):
                self.link_path.unlink()
        with self._write_lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None
        self._slave_path = None
        self.plugged = False

    def close(self) -> None:
        """Stop everything and remove the device (idempotent)."""
        if self.plugged:
            self._close_pty()

    def unplug(self) -> None:
        """USB unplug: the symlink disappears and the pty is closed, so the host's fd gets EIO/EOF."""
        self.close()

    def replug(self, power_cycle: bool = True) -> None:
        """USB re-plug: a new pty behind the same `link_path`. A USB-powered receiver also loses its RAM config and
        keys (`power_cycle`), and prints its boot banner `boot_delay` s after enumeration."""
        if self.plugged:
            self._close_pty()
        if power_cycle:
            self._forget()
        self._open_pty()
        if power_cycle:
            threading.Timer(self.boot_delay, self._boot_banner).start()

    reopen = replug

    def reset(self) -> None:
        """Power cycle / hardware reset while attached: keys and config are lost, the boot banner is printed."""
        self._forget()
        self._boot_banner()

    def _forget(self) -> None:
        with self._lock:
            self._config.clear()
            self._keys = []
            self.resets += 1

    def _boot_banner(self) -> None:
        self.write(F.boot_notice(self.inf_notice))

    def stall(self, on: bool = True) -> None:
        """Slow/stuck receiver: stop reading input, so the host's writes back up and eventually block."""
        if on:
            self._stall.set()
        else:
            self._stall.clear()

    # ------------------------------------------------------------ state

    @property
    def position(self) -> tuple[float, float, float]:
        """(lat, lon, alt) the GGA reports; settable while running."""
        with self._lock:
            return self._position

    @position.setter
    def position(self, value) -> None:
        lat, lon, alt = (float(v) for v in value)
        with self._lock:
            self._position = (lat, lon, alt)

    @property
    def quality(self) -> int:
        """GGA fix quality (0 = no fix); settable while running."""
        with self._lock:
            return self._quality

    @quality.setter
    def quality(self, value: int) -> None:
        with self._lock:
            self._quality = int(value)

    @property
    def frames(self) -> list[F.Frame]:
        with self._lock:
            return list(self._frames)

    def frames_of(self, kind: str) -> list[F.Frame]:
        with self._lock:
            return [f for f in self._frames if f.kind == kind]

    @property
    def garbage_bytes(self) -> int:
        with self._lock:
            return self._splitter.garbage_bytes

    @property
    def config(self) -> dict[int, int]:
        with self._lock:
            return dict(self._config)

    @property
    def keys(self) -> list[dict]:
        with self._lock:
            return [dict(k) for k in self._keys]

    def clear_frames(self) -> None:
        with self._lock:
            self._frames.clear()

    def wait_for(self, predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
        """Poll `predicate(self)` until true or timeout; returns the last result."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def wait_frames(self, kind: str, count: int, timeout: float = 10.0) -> list[F.Frame]:
        self.wait_for(lambda r: len(r.frames_of(kind)) >= count, timeout)
        return self.frames_of(kind)

    def pmp_frames(self) -> list[F.Frame]:
        """UBX-RXM-PMP frames (0x02 0x72) the host wrote, in order (relayed from a NEO-D9S)."""
        return [f for f in self.frames_of("ubx") if f.ubx_id == F.UBX_RXM_PMP]

    def pmp_user_data(self) -> bytes:
        """The SPARTN stream carried by the received RXM-PMP frames, concatenated."""
        return b"".join(F.pmp_user_data(f.raw) for f in self.pmp_frames())

    # ------------------------------------------------------------ output

    def write(self, data: bytes) -> int:
        """Send bytes to the host. Like a real receiver, output the host does not read is dropped, not queued
        forever: a full pty buffer drops the rest."""
        with self._write_lock:
            if self._master is None:
                return 0
            try:
                n = os.write(self._master, data)
            except BlockingIOError:
                n = 0
            except OSError:
                return 0
            self.dropped_output += len(data) - n
            self._written += n
            return n

    def _gga_loop(self) -> None:
        while not self._stop.wait(self.gga_interval):
            with self._lock:
                (lat, lon, alt), quality = self._position, self._quality
            self.write(F.gga_sentence(lat, lon, alt, quality=quality))

    # ------------------------------------------------------------ input

    def _reader(self) -> None:
        master = self._master
        last_data = time.monotonic()
        while not self._stop.is_set():
            if self._stall.is_set():
                time.sleep(0.05)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.1)
            except (OSError, ValueError):
                return
            if not ready:
                if self._splitter.pending() and time.monotonic() - last_data > IDLE_RESYNC:
                    with self._lock:
                        found = self._splitter.feed(b"", final=True)
                    self._handle(found)
                continue
            try:
                data = os.read(master, 65536)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # no slave open: cannot happen while we hold it, but be safe
                    time.sleep(0.05)
                    continue
                return
            last_data = time.monotonic()
            with self._lock:
                found = self._splitter.feed(data)
            self._handle(found)

    def _handle(self, found: list[F.Frame]) -> None:
        now = time.monotonic()
        for frame in found:
            frame.t = now
            with self._lock:
                self._frames.append(frame)
            if frame.kind == "ubx":
                self._on_ubx(frame)

    def _on_ubx(self, frame: F.Frame) -> None:
        cls, msg_id = frame.ubx_id
        payload = frame.payload
        try:  # independent check that pyubx2 accepts what the host sent
            UBXReader.parse(frame.raw, msgmode=SETPOLL)
        except Exception:
            if (cls, msg_id) not in ((UBX_CFG, UBX_CFG_VALSET), (UBX_RXM, UBX_RXM_SPARTNKEY)):
                return
        if (cls, msg_id) == (UBX_CFG, UBX_CFG_VALSET):
            self._on_valset(payload)
        elif (cls, msg_id) == (UBX_CFG, UBX_CFG_VALGET):
            self._on_valget(payload)
        elif (cls, msg_id) == (UBX_RXM, UBX_RXM_SPARTNKEY):
            if payload:
                keys = F.parse_spartnkey_payload(payload)
                with self._lock:
                    self._keys = keys
                    self.key_loads += 1
            else:
                self.write(F.ubx_frame(UBX_RXM, UBX_RXM_SPARTNKEY, F.spartnkey_payload(self.keys)))
        elif (cls, msg_id) == (UBX_MON, UBX_MON_VER) and not payload:
            sw, hw, ext = self.MON_VER
            body = sw.encode().ljust(30, b"\0") + hw.encode().ljust(10, b"\0")
            body += b"".join(x.encode().ljust(30, b"\0") for x in ext)
            self.write(F.ubx_frame(UBX_MON, UBX_MON_VER, body))

    def _ack(self, ok: bool, cls: int, msg_id: int) -> None:
        self.write(F.ubx_frame(UBX_ACK, UBX_ACK_ACK if ok else UBX_ACK_NAK, bytes((cls, msg_id))))

    def _on_valset(self, payload: bytes) -> None:
        items: dict[int, int] = {}
        ok = len(payload) >= 4 and not self.nak_valset
        pos = 4
        while ok and pos < len(payload):
            if pos + 4 > len(payload):
                ok = False
                break
            key = struct.unpack_from("<I", payload, pos)[0]
            try:
                size = F.cfg_value_size(key)
            except KeyError:
                ok = False
                break
            if pos + 4 + size > len(payload):
                ok = False
                break
            items[key] = int.from_bytes(payload[pos + 4 : pos + 4 + size], "little")
            pos += 4 + size
        if ok:
            with self._lock:
                self._config.update(items)
        self._ack(ok, UBX_CFG, UBX_CFG_VALSET)

    def _on_valget(self, payload: bytes) -> None:
        if len(payload) < 4:
            self._ack(False, UBX_CFG, UBX_CFG_VALGET)
            return
        keys = [struct.unpack_from("<I", payload, p)[0] for p in range(4, len(payload) - 3, 4)]
        out = struct.pack("<BBH", 1, 0, 0)
        config = self.config
        for key in keys:
            try:
                size = F.cfg_value_size(key)
            except KeyError:
                self._ack(False, UBX_CFG, UBX_CFG_VALGET)
                return
            out += struct.pack("<I", key) + config.get(key, 0).to_bytes(size, "little")
        self.write(F.ubx_frame(UBX_CFG, UBX_CFG_VALGET, out))
        self._ack(True, UBX_CFG, UBX_CFG_VALGET)


# ---------------------------------------------------------------- NEO-D9S

# Key ids: semuconsulting/pyubx2 src/pyubx2/ubxtypes_configdb.py (CFG_PMP_*, CFG_MSGOUT_UBX_RXM_PMP_*).
CFG_PMP = {
    "CENTER_FREQUENCY": 0x40B10011,
    "SEARCH_WINDOW": 0x30B10012,
    "DATA_RATE": 0x30B10013,
    "USE_DESCRAMBLER": 0x10B10014,
    "DESCRAMBLER_INIT": 0x30B10015,
    "USE_SERVICE_ID": 0x10B10016,
    "SERVICE_ID": 0x30B10017,
    "USE_PRESCRAMBLING": 0x10B10019,
    "UNIQUE_WORD": 0x50B1001A,
}
CFG_MSGOUT_RXM_PMP = {"I2C": 0x2091031D, "UART1": 0x2091031E, "UART2": 0x2091031F, "USB": 0x20910320, "SPI": 0x20910321}
# Module defaults, from the comments of sparkfun/SparkFun_u-blox_GNSS_v3
# examples/NEO-D9S_and_NEO-D9C/Example2_LBand_Corrections_with_NEO-D9S (unique word: not given there, 0 = unset).
PMP_MODULE_DEFAULTS = {
    "CENTER_FREQUENCY": 1539812500,
    "SEARCH_WINDOW": 2200,
    "DATA_RATE": 2400,
    "USE_DESCRAMBLER": 1,
    "DESCRAMBLER_INIT": 23560,
    "USE_SERVICE_ID": 1,
    "SERVICE_ID": 50821,
    "USE_PRESCRAMBLING": 0,
    "UNIQUE_WORD": 0,
}
# What the PointPerfect L-band service needs (same examples; u-blox/XPLR-HPG-software
# XPLR-HPG-SW/components/hpglib/src/location_service/lband_service/xplr_lband.c: USE_SERVICE_ID 0, DESCRAMBLER_INIT
# 0x6959). Some SparkFun docs list SERVICE_ID 50821 / DESCRAMBLER_INIT 23560: those are the module defaults above.
PMP_POINTPERFECT = {
    "DATA_RATE": 2400,
    "USE_DESCRAMBLER": 1,
    "DESCRAMBLER_INIT": 26969,
    "USE_PRESCRAMBLING": 0,
    "UNIQUE_WORD": F.PMP_UNIQUE_WORD,
}
PMP_FRAME_INTERVAL = F.PMP_USER_DATA_MAX * 8 / 2400  # s per full frame of user data at 2400 bps


class D9sSim(ReceiverSim):
    """A u-blox NEO-D9S L-band correction receiver on its own pty (same lifecycle as ReceiverSim: start, close,
    unplug, replug, reset, stall).

    - ACKs CFG-VALSET (NAKs with `nak_valset`), records the config; `pmp_config` shows the CFG-PMP-* items by name.
    - Tuned (`tuned`) once CFG-PMP-CENTER_FREQUENCY was set and CFG-MSGOUT-UBX_RXM_PMP_<port> = 1 (`port` is the D9S
      port the host is attached to), and (with `strict`) the demodulator settings match the PointPerfect service
      (PMP_POINTPERFECT, and SERVICE_ID 21845 unless USE_SERVICE_ID is 0); with `beam_hz` the centre frequency must also
      lie within CFG-PMP-SEARCH_WINDOW of that beam (a D9S tuned to another region's frequency receives nothing).
      `tune_problem()` says what is missing.
    - Once tuned it emits a UBX-RXM-PMP frame every `frame_interval` s, each carrying up to 504 bytes of the SPARTN
      stream: the bytes given (`spartn=` or `feed()`), then, unless `spartn` was given, synthetic SPARTN frames at the
      real cadence; frames are split over PMP user data as the satellite stream is. `emitted` / `emitted_bytes()` /
      `emitted_user_data()` hold what it wrote, for a byte-for-byte comparison with what the main receiver got.
    - `reset()` forgets the config (so it stops emitting) and prints the D9S boot notices (UBX-INF-NOTICE).
    """

    MON_VER = (  # u-blox/XPLR-HPG-software XPLR-HPG-SW/examples/positioning/01_hpg_gnss_config/README.md device info
        "EXT CORE 1.00 (cd6322)",
        "00190000",
        ("ROM BASE 0x118B2060", "FWVER=PMP 1.04", "PROTVER=24.00", "MOD=NEO-D9S"),
    )

    def __init__(
        self,
        link_path: str | os.PathLike | None = None,
        *,
        port: str = "USB",
        spartn: bytes | None = None,
        frame_interval: float = PMP_FRAME_INTERVAL,
        version: int = 1,
        beam_hz: int | None = None,
        strict: bool = True,
        boot_delay: float = 0.5,
    ) -> None:
        super().__init__(link_path, boot_delay=boot_delay, gga_interval=frame_interval)
        if port not in CFG_MSGOUT_RXM_PMP:
            raise ValueError(f"port must be one of {sorted(CFG_MSGOUT_RXM_PMP)}, not {port!r}")
        self.port = port
        self.frame_interval = frame_interval
        self.version = version
        self.beam_hz = beam_hz
        self.strict = strict
        self._given = bytearray(spartn or b"")
        self._schedule = F.SpartnSchedule() if spartn is None else None
        self._second = 0
        self._emitted: list[bytes] = []
        self._boot = time.monotonic()

    # ------------------------------------------------------------ tuning

    @property
    def pmp_config(self) -> dict[str, int]:
        """The CFG-PMP-* items set so far, by name (e.g. {"CENTER_FREQUENCY": 1556290000, ...})."""
        config = self.config
        return {name: config[key] for name, key in CFG_PMP.items() if key in config}

    def msgout_enabled(self) -> bool:
        return self.config.get(CFG_MSGOUT_RXM_PMP[self.port], 0) == 1

    def tune_problem(self) -> str | None:
        """Why the D9S receives nothing right now (None when tuned)."""
        config = self.config
        if CFG_PMP["CENTER_FREQUENCY"] not in config:
            return "CFG-PMP-CENTER_FREQUENCY not set"
        if not self.msgout_enabled():
            return f"CFG-MSGOUT-UBX_RXM_PMP_{self.port} not 1"

        def get(name: str) -> int:
            return config.get(CFG_PMP[name], PMP_MODULE_DEFAULTS[name])

        if self.beam_hz is not None and abs(get("CENTER_FREQUENCY") - self.beam_hz) > get("SEARCH_WINDOW"):
            return f"CFG-PMP-CENTER_FREQUENCY {get('CENTER_FREQUENCY')} Hz: no beam there (beam {self.beam_hz} Hz)"
        if self.strict:
            for name, wanted in PMP_POINTPERFECT.items():
                if get(name) != wanted:
                    return f"CFG-PMP-{name} is {get(name)}, PointPerfect needs {wanted}"
            if get("USE_SERVICE_ID") and get("SERVICE_ID") != F.PMP_SERVICE_ID:
                return (
                    f"CFG-PMP-SERVICE_ID {get('SERVICE_ID')} with USE_SERVICE_ID 1 (PointPerfect: {F.PMP_SERVICE_ID})"
                )
        return None

    @property
    def tuned(self) -> bool:
        return self.tune_problem() is None

    # ------------------------------------------------------------ output

    def feed(self, spartn: bytes) -> None:
        """Queue SPARTN bytes for the next frames (sent before any synthetic data)."""
        with self._lock:
            self._given += spartn

    def _next_user_data(self) -> bytes:
        with self._lock:
            if self._schedule is not None:
                while len(self._given) < F.PMP_USER_DATA_MAX:
                    self._given += b"".join(self._schedule.epoch(self._second))
                    self._second += 1
            chunk = bytes(self._given[: F.PMP_USER_DATA_MAX])
            del self._given[: len(chunk)]
            return chunk

    def emit(self) -> bytes | None:
        """Emit one RXM-PMP frame now if tuned and there is data; returns the frame written (None otherwise)."""
        if not self.tuned:
            return None
        data = self._next_user_data()
        if not data:
            return None
        frame = F.rxm_pmp_frame(
            data, version=self.version, time_tag=int((time.monotonic() - self._boot) * 1000) & 0xFFFFFFFF
        )
        if self.write(frame) != len(frame):
            return None  # the host did not read: dropped like real output (counted in dropped_output)
        with self._lock:
            self._emitted.append(frame)
        return frame

    def _gga_loop(self) -> None:  # a D9S has no position: its periodic output is UBX-RXM-PMP
        while not self._stop.wait(self.frame_interval):
            self.emit()

    @property
    def emitted(self) -> list[bytes]:
        """Every RXM-PMP frame written to the host, in order."""
        with self._lock:
            return list(self._emitted)

    def emitted_bytes(self) -> bytes:
        return b"".join(self.emitted)

    def emitted_user_data(self) -> bytes:
        """The SPARTN stream the emitted frames carried (v0 frames: including their zero padding)."""
        return b"".join(F.pmp_user_data(f) for f in self.emitted)

    def clear_emitted(self) -> None:
        with self._lock:
            self._emitted.clear()

    def _forget(self) -> None:
        super()._forget()
        with self._lock:
            self._boot = time.monotonic()

    def _boot_banner(self) -> None:
        self.write(F.d9s_boot_notice())
