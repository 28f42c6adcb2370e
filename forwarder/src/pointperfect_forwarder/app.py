"""The forwarder process: builds the pipeline from Settings, runs the main loop, handles SIGTERM/SIGHUP and systemd."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from . import config
from .backoff import Backoff
from .framing import UBX, Frame
from .health import Health, start_metrics
from .inputs import Input
from .keys import spartnkey_frame
from .lband import D9s, parse_frequencies
from .outputs import make_output
from .receiver import BATCH_MAX, ReadPace, Receiver
from .redact import Redactor
from .region import RegionSelector
from .schedule import Schedule, on_grid
from .stats import Stats
from .systemd import Notifier
from .writer import Writer

log = logging.getLogger(__name__)
# seconds between status file writes when nothing a reader judges changed (counters lag): the receiver's longest batch,
# so both land on one grid (on_grid) and an idle forwarder wakes once per 10 s
STATUS_HEARTBEAT = BATCH_MAX
STATUS_MIN_GAP = 0.5  # seconds between two writes for changes at least (a burst of changes is one write)
CREDENTIALS_CHECK_EVERY = STATUS_HEARTBEAT  # seconds between checks of credentials.json for a change (then reload)
MAIN_WAIT_MAX = 60.0  # seconds the main loop sleeps at most (its jobs are due sooner)
READ_WAIT_MAX = 10.0  # seconds the reader waits for the receiver at most (its heartbeat; STALL_LIMIT is 30 s)
STALL_LIMIT = 30.0  # seconds a loop may go without a heartbeat (beyond its longest wait) before it counts as wedged
POSITION_MAX_AGE = 120.0  # seconds the receiver's last good fix still counts as its position (then fixed_position)
WAITING_FOR_POSITION = "waiting for a position fix"
WAITING_FOR_FREQUENCIES = "waiting for the L-band frequencies"


class Pipeline:
    """One configured input -> writer -> output chain with its reader, receiver handling and health."""

    def __init__(self, settings: config.Settings, started_at: float | None = None):
        self.settings = settings
        self.stats = Stats(settings.input, settings.input_endpoint(), settings.output["type"], settings.output_target())
        if started_at:
            self.stats.started_at = started_at
        self.output = make_output(settings.output)
        self._key_frame = spartnkey_frame(settings.keys) if settings.keys else None
        self._mga_full_wanted = True
        self._stop = threading.Event()
        self.writer = Writer(
            self.output, self.stats, settings.output["queue_bytes"], self._backoff(), on_open=self._output_opened
        )
        self.output_ready = self.writer.opened
        configure = bool(settings.receiver["configure"]) and self.output.readable
        self.receiver = Receiver(
            self.stats,
            lambda f: self.writer.submit(f, priority=True),
            self._receiver_reset,
            configure=configure,
            port=settings.receiver["port"],
            source=settings.receiver["source"],
            have_keys=lambda: self._key_frame is not None,
            wake=self.output.wake,
        )
        self.health = Health(
            self.stats, lambda: self.settings.keys, settings.watchdog["no_data_timeout"], settings.certificate_not_after
        )
        self._init_region_lband()
        self.input: Input = _input_class(settings.input)(
            getattr(settings, settings.input),
            settings.ca_file,
            self.stats,
            self,
            backoff=self._backoff(),
            no_data_timeout=settings.watchdog["no_data_timeout"],
        )
        self.reader_heartbeat = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, name="reader", daemon=True)

    def _backoff(self) -> Backoff:
        """Each reconnecting part (writer, input, NEO-D9S) keeps its own steps of the configured backoff."""
        b = self.settings.backoff
        return Backoff(b["initial"], b["max"], b["reset_after"])

    def _init_region_lband(self) -> None:
        s, st = self.settings, self.stats
        mode = s.lband_mode
        self._frequencies: dict[str, int] = {}
        self._waiting: str | None = None
        self._region_lock = threading.Lock()  # the reader, the input and the NEO-D9S threads all tick the region
        # MQTT chooses a region for its one correction topic (IP) or for the NEO-D9S frequency (L-band)
        self._region_active = s.input == "mqtt" and (mode == "off" or s.lband["device"] is not None)
        if s.input == "mqtt" and mode == "off":
            corrections = s.mqtt.corrections
            candidates = [r for r in s.regions if r in corrections] or sorted(corrections)
        else:
            candidates = []  # L-band: the frequency table's regions, once it arrives
        self.region = RegionSelector(candidates, s.region if s.input == "mqtt" else None)
        st.region_needed = self._region_active
        st.lband_mode = mode
        st.lband_device = s.lband["device"] if mode == "d9s" else None
        st.d9s_state = None
        self.d9s: D9s | None = None
        if mode == "d9s":
            self.d9s = D9s(
                s.lband,
                st,
                self.writer.submit,
                self.lband_frequency,
                backoff=self._backoff(),
                no_data_timeout=s.watchdog["no_data_timeout"],
            )
        self._publish_region()

    # --- what inputs call ------------------------------------------------------------------------------------------

    def submit(self, frame: Frame, priority: bool = False) -> None:
        self.writer.submit(frame, priority)

    def submit_many(self, frames: list[Frame]) -> None:
        """Corrections read in one turn of the input, in order (one write when the output is idle)."""
        self.writer.submit_many(frames)

    def new_keys(self, frame: Frame) -> None:
        """Keys from the key topic: forwarded unchanged, before corrections, and kept for receiver resets."""
        self._key_frame = frame.data
        self.writer.submit(frame, priority=True)
        self.stats.keys_last_sent_at = time.time()

    def gga(self) -> bytes | None:
        n = self.settings.ntrip
        return self.receiver.gga(n.gga_grace, self.settings.fixed_position) if n else None

    def correction_topic(self) -> str | None:
        """The one MQTT correction topic to subscribe: None in L-band mode and until a region is chosen."""
        self.region_tick()
        selected = self.region.selected
        if self.settings.lband_mode != "off" or selected is None:
            return None
        return self.settings.mqtt.corrections.get(selected)

    def frequencies(self, payload: bytes) -> None:
        """/pp/frequencies/Lb: the NEO-D9S frequency per region; its regions are the ones to choose from."""
        try:
            table = parse_frequencies(payload)
        except ValueError as exc:
            self.stats.error(f"unreadable L-band frequencies: {exc}")
            log.warning("lband: unreadable frequencies message: %s", exc)
            return
        if table != self._frequencies:
            log.info("lband: frequencies %s", ", ".join(f"{r} {hz} Hz" for r, hz in sorted(table.items())))
        self._frequencies = table
        plan = set(self.settings.regions)
        if self.region.set_available([r for r in table if r in plan] or list(table)) and self.region.selected:
            log.info("region %s (%s)", self.region.selected, self.region.source)
        self.region_tick()

    def lband_frequency(self) -> int | None:
        """The NEO-D9S centre frequency (Hz) for the chosen region, once both are known."""
        self.region_tick()
        selected = self.region.selected
        return self._frequencies.get(selected) if selected else None

    def assistnow_full_wanted(self) -> bool:
        return self._mga_full_wanted

    def assistnow_full_done(self) -> None:
        self._mga_full_wanted = False

    # --- region ----------------------------------------------------------------------------------------------------

    def _fix(self) -> tuple[float, float, str, float | None] | None:
        """The position for the region: the receiver's fix, else fixed_position (timed now)."""
        pos = self.receiver.position(POSITION_MAX_AGE)
        if pos is not None:
            return pos[0], pos[1], "position", pos[2]
        fp = self.settings.fixed_position
        return (float(fp["lat"]), float(fp["lon"]), "fixed_position", None) if fp else None

    def region_tick(self) -> None:
        """Feed the current position to the region choice (called from the reader and the inputs' loops)."""
        changed = False
        with self._region_lock:
            if self._region_active:
                fix = self._fix()
                if fix is not None and self.region.update(*fix):
                    r = self.region
                    log.info("region %s (from the %s; plan: %s)", r.selected, r.source, ", ".join(r.available))
                    changed = True
            self._publish_region()
        if changed and getattr(self, "input", None) is not None:
            self.input.wake()  # the input sleeps until its next deadline: it follows the new region at once

    def _publish_region(self) -> None:
        s, st = self.settings, self.stats
        region = self.region.status()
        if s.input != "mqtt":
            region["available"] = list(s.regions)
        selected = region["selected"]
        topic = None
        if selected and s.input == "mqtt" and s.lband_mode == "off":
            topic = s.mqtt.corrections.get(selected)
        st.region = {**region, "topic": topic}
        if s.lband_mode != "off":
            st.lband_frequency_hz = self._frequencies.get(selected) if selected else None
        waiting = None
        if self._region_active and selected is None:
            waiting = WAITING_FOR_POSITION if region["available"] or s.lband_mode == "off" else WAITING_FOR_FREQUENCIES
        if waiting != self._waiting:
            if waiting:
                st.error(waiting)
                log.info("%s to choose the correction region", waiting)
            elif st.last_error == self._waiting:
                st.last_error = None
            self._waiting = waiting

    # --- receiver events -------------------------------------------------------------------------------------------

    def _send_keys(self) -> None:
        if self._key_frame is not None:
            self.writer.submit(Frame(UBX, self._key_frame), priority=True)
            self.stats.keys_last_sent_at = time.time()

    def _output_opened(self) -> None:
        # runs in the writer thread before the output counts as ready: keys go ahead of everything else
        self._send_keys()
        self.receiver.output_opened()

    def _receiver_reset(self, why: str) -> None:
        self.writer.drop_cut(f"receiver reset detected ({why})")  # its parser restarted: the rest is garbage to it
        self._send_keys()
        self._mga_full_wanted = True

    def _read_promptly(self) -> bool:
        """Read each frame as the receiver sends it while an ACK or a first position is awaited; otherwise in
        batches (ReadPace): a steady NMEA output then wakes the reader every few seconds, not once per sentence."""
        if self.receiver.awaiting_ack() or self._waiting == WAITING_FOR_POSITION:
            return True
        return self.stats.input_state == "waiting_for_position"

    def _read_loop(self) -> None:
        pace = ReadPace()
        while not self._stop.is_set():
            self.reader_heartbeat = time.monotonic()
            if not self.writer.opened.wait(0.5):
                continue
            generation = self.writer.generation
            # sleep until the receiver sends (or its batch is due) or its next VALSET try or key poll is due
            # (bounded for the heartbeat)
            wait = min(READ_WAIT_MAX, self.receiver.next_due() - self.receiver.now())
            prompt = self._read_promptly()
            if not prompt:
                wait = min(wait, pace.wait())
            try:
                data = self.output.read(wait, prompt)
            except OSError as exc:
                self.writer.fail(generation, str(exc) or exc.__class__.__name__)
                self._stop.wait(0.2)
                continue
            pace.read(len(data))
            if data:
                self.receiver.feed(data)
            self.receiver.tick()
            self.region_tick()

    # --- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self.writer.start()
        if self.output.readable:
            self._reader.start()
        if self.d9s is not None:
            self.d9s.start()
        self.input.start()

    def stop(self) -> None:
        self._stop.set()
        self.output.wake()
        self.input.stop()
        if self.d9s is not None:
            self.d9s.stop()
        if self._reader.is_alive():
            self._reader.join(2)
        self.writer.stop()

    def alive(self) -> bool:
        """No thread died or wedged (slow networks and backoff waits are not wedging)."""
        longest_wait = self.settings.backoff["max"] + STALL_LIMIT + 20
        ok = self.writer.working(longest_wait) and self.input.working(longest_wait)
        if self.output.readable:
            ok = ok and self._reader.is_alive() and time.monotonic() - self.reader_heartbeat < STALL_LIMIT
        if self.d9s is not None:
            ok = ok and self.d9s.working(longest_wait)
        return ok


class Forwarder:
    """Runs pipelines until SIGTERM; SIGHUP (or a changed credentials file) rebuilds the pipeline from the config."""

    def __init__(self, settings: config.Settings, notifier: Notifier | None = None, redactor=None):
        self.settings = settings
        self.notifier = notifier or Notifier()
        # one filter for the log, the status file and STATUS=: known secrets never leave the process
        self.redactor = redactor if redactor is not None else Redactor()
        self.notifier.redact = self.redactor.redact
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake = threading.Event()  # set with a stop or reload request so the main loop acts at once
        self.started_at = time.time()
        self.pipeline: Pipeline | None = None
        self._metrics = None
        self.metrics_port: int | None = None
        self.turns = 0  # main loop iterations (tests bound them: the loop sleeps until its next job)
        self._status_changed = False  # a watched field changed (any thread): the status file is rewritten at once
        self._status_written = float("-inf")  # monotonic time of the last status write
        self._status_healthy: bool | None = None  # `healthy` as last written

    def _changed(self) -> None:
        """Stats.on_change: a field the status file's readers judge changed; the main loop writes it at once."""
        self._status_changed = True
        self._wake.set()

    def request_stop(self, *_args) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self, *_args) -> None:
        self._reload.set()
        self._wake.set()

    def _credentials_mtime(self) -> float | None:
        try:
            return os.stat(self.settings.credentials_file).st_mtime
        except OSError:
            return None

    def _start(self) -> None:
        self.redactor.set_secrets(self.settings.secrets())
        logging.getLogger().setLevel(self.settings.log_level.upper())
        self.pipeline = Pipeline(self.settings, self.started_at)
        self.pipeline.stats.on_change = self._changed
        self.pipeline.start()
        h = self.settings.health
        if h["metrics_port"] is not None:
            try:
                self._metrics, self.metrics_port = start_metrics(
                    self.pipeline.health, h["metrics_address"], h["metrics_port"]
                )
                log.info("metrics on http://%s:%d/metrics", h["metrics_address"], self.metrics_port)
            except OSError as exc:
                log.error("metrics: cannot listen on %s:%s: %s", h["metrics_address"], h["metrics_port"], exc)
        s = self.settings
        log.info(
            "forwarding %s %s -> %s %s (queue %d B)",
            s.input,
            s.input_endpoint(),
            s.output["type"],
            s.output_target(),
            s.output["queue_bytes"],
        )

    def _stop_pipeline(self) -> None:
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
            self._metrics = None
        if self.pipeline is not None:
            self.pipeline.stop()

    def _do_reload(self, why: str, announce: bool = True) -> None:
        # Only a requested reload (SIGHUP) is announced: RELOADING=1 puts the unit in "reloading", which a
        # concurrent `systemctl restart` from Ansible's systemd module takes for "not running" (it then only starts).
        done = self.notifier.ready if announce else self.notifier.status
        if announce:
            self.notifier.reloading()
        try:
            new = config.load(self.settings.path)
        except config.ConfigError as exc:
            log.error("reload (%s) refused, keeping the running configuration: %s", why, exc)
            done(self._status_line())
            return
        log.info("reloading (%s)", why)
        self._stop_pipeline()
        self.settings = new
        self._start()
        done(self._status_line())

    def _status_line(self) -> str:
        p = self.pipeline
        if p is None:
            return "starting"
        s = p.stats
        return f"{s.input_type} {s.input_state}, output {s.output_state}, {s.input_frames} frames in"

    def _write_status(self) -> None:
        path = self.settings.health["status_file"]
        if path and self.pipeline is not None:
            self._status_written = time.monotonic()
            try:
                self._status_healthy = self.pipeline.health.write_status(path, self.redactor)
            except OSError as exc:
                log.warning("status file %s: %s", path, exc)

    def _status(self, sched: Schedule) -> None:
        """Contract 3: the status file (and STATUS= when its line changed); the next heartbeat counts from now."""
        self._write_status()
        # the next heartbeat on the grid the receiver's batch reads use: the two threads wake together
        sched.every(
            "status", STATUS_HEARTBEAT, slack=STATUS_HEARTBEAT / 2, first=on_grid(time.monotonic(), STATUS_HEARTBEAT)
        )
        line = self._status_line()
        if line != self._last_status_line:
            self.notifier.status(line)
            self._last_status_line = line
        self._watch_healthy(sched)

    def _watch_healthy(self, sched: Schedule) -> None:
        """A look at `healthy` when time alone (the no-data timeout) turns it false before the next heartbeat."""
        left = self.pipeline.health.healthy_for() if self.pipeline is not None else None
        soon = left is not None and left < STATUS_HEARTBEAT
        sched.every("healthy", STATUS_HEARTBEAT if soon else None, first=(left or 0.0) + 0.1)

    def _schedule(self) -> Schedule:
        """The main loop's jobs; the credentials check and the summary ride along with a status write when close (each
        wake costs more than the work: an idle loop wakes once per heartbeat)."""
        sched = Schedule()
        sched.every("status", STATUS_HEARTBEAT, slack=STATUS_HEARTBEAT / 2)
        check = CREDENTIALS_CHECK_EVERY
        sched.every("credentials", check, slack=check / 2, first=on_grid(time.monotonic(), check))
        self._summary_interval = self.settings.health["summary_interval"]
        sched.every("summary", self._summary_interval, slack=STATUS_HEARTBEAT)
        interval = self.notifier.watchdog_interval
        if interval:
            sched.every("watchdog", interval, slack=interval / 4)
        return sched

    def _reschedule(self, sched: Schedule) -> None:
        """After a reload: a changed summary interval takes effect (the other jobs keep their times)."""
        interval = self.settings.health["summary_interval"]
        if interval != self._summary_interval:
            self._summary_interval = interval
            sched.every("summary", interval, slack=STATUS_HEARTBEAT, first=interval)

    def run(self) -> int:
        self._start()
        self.notifier.ready(self._status_line())
        sched = self._schedule()
        self._summary_started = False
        self._cred_mtime = self._credentials_mtime()
        self._last_status_line = ""
        while not self._stop.is_set():
            self.turns += 1
            try:
                self._turn(sched)
            except Exception:
                log.exception("main loop error (continuing)")
            # sleeps until the next job; stop and reload requests wake it at once
            self._wake.wait(sched.wait(cap=MAIN_WAIT_MAX))
            self._wake.clear()
        log.info("stopping")
        self.notifier.stopping()
        self._stop_pipeline()
        if self.pipeline is not None:
            self.pipeline.stats.set_input("stopped")
            self._write_status()
        self.notifier.close()
        return 0

    def _turn(self, sched) -> None:
        """One wakeup of the main loop: a reload, then the jobs that are due."""
        if self._reload.is_set():
            self._reload.clear()
            self._do_reload("SIGHUP")
            self._cred_mtime = self._credentials_mtime()
            self._reschedule(sched)
        if self._status_changed:  # written at once; a burst of changes once, STATUS_MIN_GAP apart
            self._status_changed = False
            gap = max(0.0, self._status_written + STATUS_MIN_GAP - time.monotonic())
            sched.every("status", STATUS_HEARTBEAT, first=gap)
        due = sched.due()
        if "credentials" in due:
            mtime = self._credentials_mtime()
            if mtime is not None and mtime != self._cred_mtime:
                self._cred_mtime = mtime
                self._do_reload("credentials file changed", announce=False)
                self._reschedule(sched)
        p = self.pipeline
        if "status" in due or ("healthy" in due and p.health.healthy() != self._status_healthy):
            self._status(sched)
        elif "healthy" in due:
            self._watch_healthy(sched)
        if "summary" in due:
            if self._summary_started:
                log.info(p.health.summary())
            else:
                p.health.summary()  # start the first interval
                self._summary_started = True
        if "watchdog" in due:
            if p.alive():
                self.notifier.watchdog()
            else:  # not pinged: look again in a second, as long as the systemd watchdog allows
                interval = self.notifier.watchdog_interval
                sched.every("watchdog", interval, slack=interval / 4, first=min(1.0, interval))


def install_signals(fwd: Forwarder) -> None:
    signal.signal(signal.SIGTERM, fwd.request_stop)
    signal.signal(signal.SIGINT, fwd.request_stop)
    signal.signal(signal.SIGHUP, fwd.request_reload)


def _input_class(kind: str) -> type[Input]:
    """Import only the input in use: paho-mqtt alone costs ~6 MB of RSS that an NTRIP gateway does not need."""
    if kind == "mqtt":
        from .inputs.mqtt import MqttInput  # noqa: PLC0415 - see docstring

        return MqttInput
    from .inputs.ntrip import NtripInput  # noqa: PLC0415 - see docstring

    return NtripInput
