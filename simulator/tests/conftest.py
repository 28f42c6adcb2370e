"""Pytest setup for the simulator tests: import path plus a shared running simulator (reset before each test)."""

import sys
from pathlib import Path

import pytest

SIM_ROOT = Path(__file__).resolve().parent.parent
if str(SIM_ROOT) not in sys.path:
    sys.path.insert(0, str(SIM_ROOT))

from pointperfect_sim.server import run_in_thread  # noqa: E402
from sim_tokens import T_IP  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: tests that start real mosquitto/str2str/stunnel (the lab)")


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
