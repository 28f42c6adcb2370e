"""Jittered exponential reconnect backoff with a cap; what a session did decides where the next attempt starts."""

from __future__ import annotations

import random
import time


class Backoff:
    """Each delay is jittered between half and all of its step (a fleet never reconnects in lockstep); the step
    doubles per attempt up to `maximum`.

    `session_ended(delivered)` starts the steps again at `initial` after a session that delivered data (it worked:
    a new outage is a new incident) or that stayed connected at least `reset_after` seconds (attempts are then that
    far apart anyway). Failed connections, refusals and short sessions without data keep doubling (anti-ban)."""

    def __init__(self, initial: float = 1.0, maximum: float = 60.0, reset_after: float = 60.0, rng=None, clock=None):
        self.initial = initial
        self.maximum = maximum
        self.reset_after = reset_after
        self.attempt = 0
        self._rng = rng or random.SystemRandom()
        self._clock = clock or time.monotonic
        self._session_start: float | None = None

    def session_started(self) -> None:
        """A connection was established and data may flow."""
        self._session_start = self._clock()

    def session_ended(self, delivered: bool = False) -> bool:
        """A session ended; True when it earned a fresh start (it delivered data or lived `reset_after` s)."""
        start, self._session_start = self._session_start, None
        lived = start is not None and self._clock() - start >= self.reset_after
        if delivered or lived:
            self.reset()
            return True
        return False

    def reset(self) -> None:
        self.attempt = 0

    def ceiling(self) -> float:
        """The un-jittered delay of the next attempt."""
        return min(self.maximum, self.initial * (2 ** min(self.attempt, 30)))

    def next_delay(self) -> float:
        """Delay before the next attempt: between half and all of the exponential step (never a tight loop)."""
        ceiling = self.ceiling()
        self.attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def at_cap(self) -> float:
        """Delay for failures that retrying soon cannot fix (e.g. credentials rejected): jittered cap."""
        self.attempt = max(self.attempt + 1, 31)
        return self._rng.uniform(self.maximum / 2, self.maximum)
