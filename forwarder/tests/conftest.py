"""Forwarder test fixtures: the real lab (PKI, Mosquitto, receiver on a pty) and a daemon runner."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from fwd_helpers import Daemon


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    from pointperfect_sim.pki import PKI  # noqa: PLC0415 - importable once sys.path is set above

    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(pki, tmp_path):
    from pointperfect_sim.lab import Mosquitto  # noqa: PLC0415 - as above

    mosq = Mosquitto(pki, tmp_path / "broker").start()
    yield mosq
    mosq.stop()


@pytest.fixture
def receiver(tmp_path):
    from pointperfect_sim.receiver import ReceiverSim  # noqa: PLC0415 - as above

    sim = ReceiverSim(tmp_path / "ttyGNSS").start()
    yield sim
    sim.close()


@pytest.fixture
def daemons():
    """Start daemons with `daemons(config, env)`; all are stopped at teardown."""
    started: list[Daemon] = []

    def start(config: Path, env: dict | None = None) -> Daemon:
        d = Daemon(config, env).start()
        started.append(d)
        return d

    yield start
    for d in started:
        with contextlib.suppress(AssertionError):
            d.stop()
