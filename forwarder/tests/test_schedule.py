"""schedule.py: jobs come due on an injected clock, ride along within their slack, and the loop's wait is the time to
the next one (no periodic tick)."""

from __future__ import annotations

import itertools

import pytest
from pointperfect_forwarder.schedule import Schedule, on_grid


def _sched():
    now = [100.0]
    return Schedule(clock=lambda: now[0]), now


def test_jobs_come_due_on_their_period_without_drift():
    sched, now = _sched()
    sched.every("status", 2.0)
    assert sched.due() == ["status"]  # due at once
    assert sched.due() == []
    assert sched.wait() == pytest.approx(2.0)
    now[0] = 102.3  # woken a little late
    assert sched.due() == ["status"]
    assert sched.wait() == pytest.approx(1.7)  # the next one stays on the 2 s grid
    now[0] = 110.0  # a long stall: no burst of missed runs, the next is a full period away
    assert sched.due() == ["status"]
    assert sched.due() == []
    assert sched.wait() == pytest.approx(2.0)


def test_a_job_with_slack_rides_along_instead_of_waking_the_loop():
    sched, now = _sched()
    sched.every("status", 2.0)
    sched.every("credentials", 5.0, slack=2.0, first=5.0)
    seen = []
    for _ in range(20):  # the loop: wake when the schedule says, run what is due
        now[0] += sched.wait()
        seen.append((now[0] - 100.0, sched.due()))
    wakes = [t for t, _due in seen]
    assert wakes == pytest.approx([2.0 * i for i in range(20)])  # only the status grid wakes the loop
    checks = [t for t, due in seen if "credentials" in due]
    # due at 5, 10, 15, 20: run on the status wake at most 2 s before, never after
    assert checks[:4] == pytest.approx([4.0, 8.0, 14.0, 18.0])
    assert all(b - a >= 3.0 for a, b in itertools.pairwise(checks))


def test_wait_is_capped_none_without_jobs_and_jobs_can_be_removed():
    sched, now = _sched()
    assert sched.wait() is None
    assert sched.wait(cap=60) == 60
    sched.every("watchdog", 15.0, slack=3.75)
    sched.due()
    assert sched.wait(cap=60) == pytest.approx(15.0)
    now[0] += 11.5
    assert sched.due() == ["watchdog"]  # within its slack of 3.75 s
    sched.every("watchdog", None)
    assert sched.wait() is None and sched.due() == []
    sched.every("x", 0)  # no period: no job
    assert sched.wait() is None


def test_on_grid_lines_up_idle_deadlines():
    assert on_grid(0.0, 10.0) == 10.0
    assert on_grid(23.0, 10.0) == pytest.approx(7.0)
    assert on_grid(19.5, 10.0) == pytest.approx(10.5)  # woken just before the grid point: not again at once
    assert on_grid(61.0, 30.0) == pytest.approx(29.0)  # a multiple of the period: the same grid
