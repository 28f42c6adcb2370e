"""Pytest setup for the simulator tests: a shared running ZTP API simulator (reset before each test)."""

import pytest
from pointperfect_sim.server import run_in_thread
from sim_tokens import T_IP


@pytest.fixture(scope="session")
def sim_handle(tmp_path_factory):
    handle = run_in_thread(
        tmp_path_factory.mktemp("sim"), {T_IP: {"plan": "ip", "region": "eu", "not_activated_calls": 0}}
    )
    yield handle
    handle.stop()


@pytest.fixture
def sim(sim_handle):
    """The shared simulator, reset (devices, counters, profiles) before each test; yields its SimClient."""
    client = sim_handle.client()
    client.reset()
    return client
