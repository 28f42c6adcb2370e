"""worker.py: a daemon thread that stops on request, wakes what waits, releases what it holds, and tells dead or
wedged from working."""

from __future__ import annotations

import threading
import time

from pointperfect_forwarder.worker import Worker


class _Loop(Worker):
    """Turns until stopped; `hang` makes it stop turning (wedged) without ending."""

    def __init__(self):
        super().__init__("test-worker")
        self.hang = threading.Event()
        self.woken = self.released = 0
        self.cond = threading.Condition()

    def _main(self):
        while not self._stop.is_set():
            if not self.hang.is_set():
                self.heartbeat = time.monotonic()
            with self.cond:
                self.cond.wait(30)  # only `_wake` ends this wait early

    def _wake(self):
        self.woken += 1
        with self.cond:
            self.cond.notify_all()

    def _stopped(self):
        self.released += 1


def test_stop_wakes_the_loop_and_releases_once():
    w = _Loop()
    assert not w.alive() and w._thread.name == "test-worker" and w._thread.daemon
    w.start()
    assert w.alive() and w.working(5)
    started = time.monotonic()
    w.stop(timeout=5)
    assert time.monotonic() - started < 5  # woken, not timed out
    assert not w.alive() and not w.working(5)
    assert (w.woken, w.released) == (1, 1)


def test_a_wedged_loop_is_alive_but_not_working():
    w = _Loop()
    w.hang.set()
    w.heartbeat -= 10  # its last turn was 10 s ago
    w.start()
    try:
        assert w.alive()
        assert not w.working(5) and w.working(60)
    finally:
        w.stop(timeout=5)
