"""Deadlines instead of periodic ticks: named periodic jobs on one clock, so a loop sleeps until the next one is due.

A job may run up to its `slack` seconds early when the loop is awake anyway, so jobs with loose periods ride along
with the others instead of waking the process on their own."""

from __future__ import annotations

import time
from collections.abc import Callable


class Schedule:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._jobs: dict[str, list[float]] = {}  # name -> [next due time, period, slack]

    def every(self, name: str, period: float | None, slack: float = 0.0, first: float = 0.0) -> None:
        """Run `name` every `period` s, the first time `first` s from now; a period of None removes the job."""
        if period is None or period <= 0:
            self._jobs.pop(name, None)
            return
        self._jobs[name] = [self._clock() + first, float(period), min(float(slack), float(period))]

    def due(self) -> list[str]:
        """The jobs to run now (due, or due within their slack), each moved on by its period."""
        now = self._clock()
        out = []
        for name, job in self._jobs.items():
            when, period, slack = job
            if now >= when - slack:
                out.append(name)
                # the next time counts from when it was due (no drift), but never lies in the past
                job[0] = when + period if when + period > now else now + period
        return out

    def wait(self, cap: float | None = None) -> float | None:
        """Seconds until the next job is due (0 if one is), at most `cap`; None without jobs or cap: wait for events."""
        now = self._clock()
        waits = [max(0.0, when - now) for when, _period, _slack in self._jobs.values()]
        if cap is not None:
            waits.append(cap)
        return min(waits) if waits else None


def on_grid(now: float, period: float) -> float:
    """Seconds from `now` to the next multiple of `period` on the clock (at least a tenth of a period away). Loops
    whose idle deadlines lie on one grid (the main loop's heartbeat, the receiver's batch reads) wake together, and
    one wake-up's cold caches serve them all: after a long sleep the first ~0.1 ms of any work is cache misses."""
    wait = period - now % period
    return wait + period if wait < period / 10 else wait
