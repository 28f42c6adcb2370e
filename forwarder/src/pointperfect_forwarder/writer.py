"""The one writer: whole frames only, keys/config before corrections, bounded queue, output reopen."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from .backoff import Backoff
from .framing import Frame
from .outputs import GONE_ERRNOS, Output
from .stats import Stats, error_text
from .worker import Worker

log = logging.getLogger(__name__)
STOP_CHECK = 0.5  # seconds between stop checks while a write waits for the output
IDLE_WAIT = 20.0  # seconds an idle writer sleeps between heartbeats (well inside the watchdog's limit)
STALL_AFTER = 2.0  # seconds a write may wait before the output is reported "stalled" (not healthy)


class _Cut(Exception):
    """A write failed after `done` bytes of the frame were out; str() is the reason."""

    def __init__(self, done: int, reason: str):
        super().__init__(reason)
        self.done = done


class Writer(Worker):
    """Frames are written whole and one at a time, so no frame is ever spliced into another.

    When nothing is queued and the output is idle, `submit` writes the frame at once from the caller's thread
    with one non-blocking write (no hand-off, no wake-up of another thread). Everything else goes through the
    queue to the writer thread: what did not fit, frames arriving while a write is running, and the rest of a cut
    frame, which goes out before anything else, also after a reopen, so the receiver still sees it whole.

    The rest of a cut frame is finished only for the same receiver: after a stall, or a reopen of the same device
    node. When the node vanished meanwhile (an open failed with ENOENT/ENODEV/ENXIO, or the reopened node is another
    one: st_dev/st_ino/st_rdev), or a receiver reset was detected (`drop_cut`), the receiver's parser restarted and
    the rest would be garbage to it: it is dropped and counted (`cut_frames_dropped`).

    Priority frames (keys, receiver configuration) are written before any queued correction. The queue is bounded
    by `queue_bytes`: when full, the oldest corrections are dropped (and counted) to make room for new ones.
    """

    def __init__(
        self,
        output: Output,
        stats: Stats,
        queue_bytes: int,
        backoff: Backoff,
        on_open: Callable[[], None] | None = None,
    ):
        super().__init__("writer")
        self.output = output
        self.stats = stats
        self.queue_bytes = queue_bytes
        self.backoff = backoff
        self.on_open = on_open
        self.opened = threading.Event()  # set while the output is open
        self._high: collections.deque[Frame] = collections.deque()
        self._normal: collections.deque[Frame] = collections.deque()
        self._queued = 0
        self._tail: tuple[Frame, int, bool] | None = None  # a cut frame: (frame, bytes already out, priority)
        self._busy = False  # a thread is using the output (writing, closing or opening); guarded by _cond
        # the hot path (submit) takes the lock itself: Condition's own __enter__/__exit__ are Python calls. A plain
        # lock: nothing that holds it takes it again
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._failed_generation: int | None = None
        self.generation = 0
        self._identity: tuple | None = None  # the open device node (Output.identity) of the last successful open
        self._gone = False  # the device node was missing at an open attempt since then

    # --- producer side ---------------------------------------------------------------------------------------------

    def submit(self, frame: Frame, priority: bool = False) -> None:
        self.submit_many([frame], priority)

    def submit_many(self, frames: list[Frame], priority: bool = False) -> None:
        """Frames in their order, as `submit` one by one would take them; when they go out from the caller's thread,
        they go with one write (a busy input's frames of one turn: one system call instead of one per frame)."""
        with self._lock:
            if priority:
                # the same key/config frame is already waiting (e.g. re-queued on a reopen)
                frames = [frame for frame in frames if frame not in self._high]
            if self._busy or self._has_work():
                for frame in frames:
                    self._enqueue(frame, priority)
                self._cond.notify()  # once for all of them
                return
            if not frames:
                return
            self._busy = True  # idle and open: the output is this thread's for one write
        data = frames[0].data if len(frames) == 1 else b"".join(frame.data for frame in frames)
        try:
            done, reason = self.output.write_some(data), None
        except OSError as exc:
            done, reason = 0, error_text(exc)
        sent = frames
        with self._lock:
            self._busy = False
            if done < len(data):
                cut, left = 0, done
                while left >= len(frames[cut].data):
                    left -= len(frames[cut].data)
                    cut += 1
                sent = frames[:cut]
                # the cut (or first unwritten) frame goes first, the others behind it as if submitted now
                self._keep(frames[cut], left, priority)
                for frame in frames[cut + 1 :]:
                    self._enqueue(frame, priority)
                if reason is not None:
                    self._failed(self.generation, reason)
            if self._has_work():
                self._cond.notify()
        for frame in sent:
            self.stats.data_out(frame.stream, len(frame.data))

    def queued_bytes(self) -> int:
        return self._queued

    def drop_cut(self, reason: str) -> bool:
        """The receiver restarted (reset detected): the rest of a cut frame would be garbage to it; True if dropped."""
        with self._cond:
            return self._drop_tail(reason)

    def fail(self, generation: int, reason: str) -> None:
        """The reader saw the output fail: the writer thread closes and reopens it."""
        with self._cond:
            self._failed(generation, reason)
            self._cond.notify()

    # --- lifecycle (Worker hooks) ----------------------------------------------------------------------------------

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _stopped(self) -> None:
        self._close()

    # --- queue (all under _cond) -----------------------------------------------------------------------------------

    def _has_work(self) -> bool:
        return bool(
            self._tail is not None
            or self._high
            or self._normal
            or self._failed_generation is not None
            or not self.opened.is_set()
        )

    def _enqueue(self, frame: Frame, priority: bool) -> None:
        """Queue a frame (the caller notifies the writer thread)."""
        size = len(frame.data)
        queue = self._high if priority else self._normal
        # make room by dropping the oldest corrections first, then (only if needed) the oldest priority frames
        while self._queued + size > self.queue_bytes and (self._normal or (priority and self._high)):
            old = self._normal.popleft() if self._normal else self._high.popleft()
            self._queued -= len(old.data)
            self.stats.dropped(len(old.data))
        if self._queued + size > self.queue_bytes:
            self.stats.dropped(size)
            return
        queue.append(frame)
        self._queued += size

    def _keep(self, frame: Frame, done: int, priority: bool) -> None:
        """A frame that is not (all) out yet goes first: its rest if it was cut, else the whole of it."""
        if done:
            self._tail = (frame, done, priority)
            log.info("output %s %s: a frame was cut after %d of %d bytes", *self._names(), done, len(frame.data))
        else:
            (self._high if priority else self._normal).appendleft(frame)
            self._queued += len(frame.data)

    def _drop_tail(self, reason: str) -> bool:
        """Drop the rest of a cut frame (under _cond, or in the writer thread while it owns the output)."""
        if self._tail is None:
            return False
        frame, done, _priority = self._tail
        self._tail = None
        self.stats.cut_frame_dropped()
        log.warning(
            "output %s %s: dropped the rest of a cut frame (%d of %d bytes were out): %s",
            *self._names(),
            done,
            len(frame.data),
            reason,
        )
        return True

    def _failed(self, generation: int, reason: str) -> None:
        if generation == self.generation and self._failed_generation is None:
            self._failed_generation = generation
            self.stats.output_error = reason

    def _pop(self) -> tuple[Frame, int, bool]:
        if self._tail is not None:
            tail, self._tail = self._tail, None
            return tail
        priority = bool(self._high)
        frame = (self._high if priority else self._normal).popleft()
        self._queued -= len(frame.data)
        return frame, 0, priority

    # --- writer thread ---------------------------------------------------------------------------------------------

    def _close(self) -> None:
        self.opened.clear()
        self.output.close()
        self.stats.output_state = "closed"

    def _open(self) -> bool:
        try:
            self.output.open()
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                self._gone = True
            reason = error_text(exc)
            if self.stats.output_error != reason or self.backoff.attempt == 0:
                log.warning("output %s %s: cannot open: %s", *self._names(), reason)
            self.stats.output_error = reason
            self.stats.output_state = "closed"
            return False
        try:
            identity = self.output.identity()
        except (OSError, NotImplementedError):
            identity = None
        with self._cond:
            if self._gone or (identity is not None and self._identity is not None and identity != self._identity):
                self._drop_tail("the device was replaced (re-plugged or power-cycled)")
        self._identity, self._gone = identity, False
        self.generation += 1
        self._failed_generation = None
        self.backoff.reset()
        self.stats.output_state = "open"
        self.stats.output_error = None
        log.info("output %s %s: open", *self._names())
        if self.on_open:
            self.on_open()  # queues keys and receiver config ahead of any correction (after a cut frame's rest)
        self.opened.set()
        return True

    def _repair(self) -> None:
        """Close a failed output, open a closed one."""
        if self.opened.is_set():
            log.warning("output %s %s: failed (%s), reopening", *self._names(), self.stats.output_error)
            self._close()
        if not self._open():
            self._stop.wait(self.backoff.next_delay())

    def _write(self, frame: Frame, done: int) -> None:
        """Write frame.data[done:] within the output's write_timeout; raises _Cut on failure."""
        view = memoryview(frame.data)
        start = time.monotonic()
        deadline = start + self.output.write_timeout
        try:
            while True:
                done += self.output.write_some(view[done:])
                if done == len(view):
                    break
                while not self.output.wait_writable(min(STOP_CHECK, deadline - time.monotonic())):
                    now = time.monotonic()
                    if self._stop.is_set():
                        raise _Cut(done, "stopping")
                    if now >= deadline:
                        raise _Cut(done, f"write timed out after {self.output.write_timeout:g} s")
                    if now - start >= STALL_AFTER and self.stats.output_state == "open":
                        self.stats.output_state = "stalled"
                        log.warning("output %s %s: stalled, the receiver takes no data", *self._names())
        except OSError as exc:
            raise _Cut(done, error_text(exc)) from None
        if self.stats.output_state == "stalled":
            self.stats.output_state = "open"
            log.info("output %s %s: takes data again after %.1f s", *self._names(), time.monotonic() - start)

    def _names(self) -> tuple[str, str]:
        return self.output.kind, self.output.target

    def _main(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            with self._cond:
                if self._busy or not self._has_work():
                    # notified on new work and on stop; the timeout only refreshes the heartbeat the watchdog reads
                    self._cond.wait(IDLE_WAIT)
                    continue
                self._busy = True
                ready = self.opened.is_set() and self._failed_generation is None
                item = self._pop() if ready else None
            try:
                if item is None:
                    self._repair()
                    continue
                frame, done, priority = item
                try:
                    self._write(frame, done)
                except _Cut as cut:
                    with self._cond:
                        self._keep(frame, cut.done, priority)
                        self._failed(self.generation, str(cut))
                    continue
                self.stats.data_out(frame.stream, len(frame.data))
            finally:
                with self._cond:
                    self._busy = False
        self.stats.output_state = "closed"
