"""Fixtures of the reliability suite: a PKI, the real broker, the receiver simulator and forwarder daemons."""

from __future__ import annotations

import contextlib
import shutil

import pytest
from pointperfect_sim.pki import PKI
from pointperfect_sim.receiver import ReceiverSim

from tests.reliability import lab as L


def pytest_configure(config):
    config.addinivalue_line("markers", "reliability: reliability and security suite (tests/reliability, issue 7)")
    config.addinivalue_line("markers", "netns: creates its own network namespace and veth pair (root, iproute2)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("rel-pki"))


@pytest.fixture
def broker(pki, tmp_path):
    if shutil.which("mosquitto") is None and L.MOSQUITTO is None:
        pytest.fail("mosquitto is not installed (make deps)")
    mosq = L.Mosquitto(pki, tmp_path / "broker").start()
    yield mosq
    mosq.stop()


@pytest.fixture
def receiver(tmp_path):
    sim = ReceiverSim(tmp_path / "ttyGNSS").start()
    yield sim
    sim.close()


@pytest.fixture
def daemons():
    """daemons(config, prefix=()) starts a forwarder; every one is stopped at teardown."""
    started: list[L.Daemon] = []

    def start(config, prefix=()) -> L.Daemon:
        d = L.Daemon(config, prefix).start()
        started.append(d)
        return d

    yield start
    for d in started:
        with contextlib.suppress(Exception):
            d.stop()
