"""The one writer thread: whole frames only, keys/config before corrections, bounded queue, output reopen."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from .backoff import Backoff
from .framing import Frame
from .outputs import Output
from .stats import Stats

log = logging.getLogger(__name__)


class Writer:
    """Frames are queued whole and written whole, one at a time, by a single thread, so no frame is ever spliced.

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
        self.output = output
        self.stats = stats
        self.queue_bytes = queue_bytes
        self.backoff = backoff
        self.on_open = on_open
        self.opened = threading.Event()  # set while the output is open
        self.heartbeat = time.monotonic()
        self._high: collections.deque[Frame] = collections.deque()
        self._normal: collections.deque[Frame] = collections.deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._failed_generation: int | None = None
        self.generation = 0
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    # --- producer side ---------------------------------------------------------------------------------------------

    def submit(self, frame: Frame, priority: bool = False) -> None:
        size = len(frame.data)
        with self._cond:
            if priority and frame in self._high:
                return  # the same key/config frame is already waiting (e.g. re-queued on a reopen)
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
            self._cond.notify()

    def queued_bytes(self) -> int:
        return self._queued

    def fail(self, generation: int, reason: str) -> None:
        """The reader saw the output fail: the writer thread closes and reopens it."""
        with self._cond:
            if generation == self.generation and self._failed_generation is None:
                self._failed_generation = generation
                self.stats.output_error = reason
                self._cond.notify()

    # --- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)
        self._close()

    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- writer thread ---------------------------------------------------------------------------------------------

    def _close(self) -> None:
        self.opened.clear()
        self.output.close()
        self.stats.output_state = "closed"

    def _open(self) -> bool:
        try:
            self.output.open()
        except OSError as exc:
            reason = exc.strerror or str(exc) or exc.__class__.__name__
            if self.stats.output_error != reason or self.backoff.attempt == 0:
                log.warning("output %s %s: cannot open: %s", self.output.kind, self.output.target, reason)
            self.stats.output_error = reason
            self.stats.output_state = "closed"
            return False
        self.generation += 1
        self._failed_generation = None
        self.backoff.reset()
        self.stats.output_state = "open"
        self.stats.output_error = None
        log.info("output %s %s: open", self.output.kind, self.output.target)
        if self.on_open:
            self.on_open()  # queues keys and receiver config ahead of any correction
        self.opened.set()
        return True

    def _next(self) -> tuple[Frame, bool] | None:
        with self._cond:
            if not (self._high or self._normal or self._stop.is_set() or self._failed_generation is not None):
                self._cond.wait(2.0)  # notified on every frame; the timeout only re-checks stop
            priority = bool(self._high)
            queue = self._high if priority else self._normal
            if not queue or self._failed_generation is not None:
                return None
            frame = queue.popleft()
            self._queued -= len(frame.data)
            return frame, priority

    def _requeue(self, frame: Frame, priority: bool) -> None:
        with self._cond:
            (self._high if priority else self._normal).appendleft(frame)
            self._queued += len(frame.data)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            if self._failed_generation is not None and self.opened.is_set():
                log.warning(
                    "output %s %s: failed (%s), reopening",
                    self.output.kind,
                    self.output.target,
                    self.stats.output_error,
                )
                self._close()
            if not self.opened.is_set():
                if not self._open():
                    self._stop.wait(self.backoff.next_delay())
                continue
            item = self._next()
            if item is None:
                continue
            frame, priority = item
            try:
                self.output.write(frame.data)
            except OSError as exc:
                # the whole frame is written again after the reopen; the receiver resyncs on the cut one
                self._requeue(frame, priority)
                self.stats.output_error = exc.strerror or str(exc) or exc.__class__.__name__
                log.warning(
                    "output %s %s: write failed (%s), reopening",
                    self.output.kind,
                    self.output.target,
                    self.stats.output_error,
                )
                self._close()
                continue
            self.stats.data_out(frame.stream, len(frame.data))
        self.stats.output_state = "closed"
