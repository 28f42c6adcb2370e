"""The daemon's long-running threads (writer, NEO-D9S, input): start, stop, and the heartbeat its watchdog reads."""

from __future__ import annotations

import threading
import time


class Worker:
    """A daemon thread running `_main` until `_stop` is set. `_main` sets `heartbeat` on every turn of its loop;
    `_wake` (to interrupt a wait) and `_stopped` (to release what it holds) are the subclass's hooks."""

    def __init__(self, name: str):
        self.heartbeat = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        """Interrupt a wait that does not watch `_stop`."""

    def _stopped(self) -> None:
        """After the thread ended (or the join timed out)."""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake()
        self._thread.join(timeout)
        self._stopped()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def working(self, limit: float) -> bool:
        """Alive, and its loop turned within the last `limit` s (not dead, not wedged)."""
        return self.alive() and time.monotonic() - self.heartbeat < limit
