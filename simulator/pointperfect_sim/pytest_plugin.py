"""Pytest fixtures of the simulated world, loaded once for every test root through the `pytest11` entry point:
a PKI, the real broker and caster, a receiver on a pty, forwarder daemons and nspawn fleets."""

from __future__ import annotations

import contextlib

import pytest

from .broker import MOSQUITTO, Mosquitto
from .caster import Caster
from .daemon import ForwarderDaemon
from .fleet import Fleet
from .pki import PKI
from .receiver import ReceiverSim

CASTER_USER, CASTER_PASSWORD = "caster-user", "caster-Ntrip-Pw-1"


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> PKI:
    """The simulator's PKI: the broker, the caster and every device certificate of a session chain to its CA."""
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(pki, tmp_path):
    """A running Mosquitto (mutual TLS, ACL) on a free loopback port."""
    if MOSQUITTO is None:
        pytest.fail("mosquitto is not installed (make deps)")
    with Mosquitto(pki, tmp_path / "broker") as mosq:
        yield mosq


@pytest.fixture
def caster(pki, tmp_path):
    """A running NTRIP caster (str2str behind the GGA gate, stunnel for TLS) with mountpoint NEAR-SPARTN and the
    account CASTER_USER / CASTER_PASSWORD."""
    with Caster(tmp_path / "caster", None, None, "NEAR-SPARTN", CASTER_USER, CASTER_PASSWORD, pki) as c:
        yield c


@pytest.fixture
def receiver(tmp_path):
    """A simulated u-blox receiver on a pseudo-terminal (its device path: `receiver.device_path`)."""
    sim = ReceiverSim(tmp_path / "ttyGNSS").start()
    yield sim
    sim.close()


@pytest.fixture
def forwarder_timeouts() -> dict:
    """Waits of the forwarders `daemons` starts ({"status_timeout": s, "stop_timeout": s}); a suite may override."""
    return {}


@pytest.fixture
def daemons(forwarder_timeouts):
    """daemons(config, prefix=(), env=None) starts a forwarder on forwarder.json `config`; all stop at teardown."""
    started: list[ForwarderDaemon] = []

    def start(config, prefix=(), *, env: dict | None = None) -> ForwarderDaemon:
        daemon = ForwarderDaemon(config, env, prefix, **forwarder_timeouts).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        with contextlib.suppress(AssertionError, OSError):
            daemon.stop()


@pytest.fixture
def fleets(tmp_path):
    """fleets(n, **options) boots n nspawn gateways (see pointperfect_sim.fleet.Fleet); all halt at teardown."""
    booted: list[Fleet] = []

    def boot(n: int, **options) -> Fleet:
        fleet = Fleet(n, tmp_path / f"fleet-{len(booted)}", **options)
        booted.append(fleet)
        return fleet.up()

    yield boot
    for fleet in booted:
        fleet.down()
