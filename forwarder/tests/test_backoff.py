"""backoff.py: jittered exponential steps up to the cap, restarted by a session that lasted."""

from __future__ import annotations

import random

from pointperfect_forwarder.backoff import Backoff


def test_backoff_grows_jittered_to_cap_and_resets_after_long_session():
    now = [0.0]
    b = Backoff(1, 60, 60, rng=random.Random(1), clock=lambda: now[0])
    delays = [b.next_delay() for _ in range(10)]
    for i, d in enumerate(delays):
        ceiling = min(60, 2**i)
        assert ceiling / 2 <= d <= ceiling
    assert max(delays) <= 60 and delays[-1] >= 30
    b.session_started()
    now[0] += 10
    b.session_ended()  # a short session does not reset: no tight loop against a flapping server
    assert b.next_delay() >= 30
    b.session_started()
    now[0] += 61
    b.session_ended()
    assert b.next_delay() <= 1
