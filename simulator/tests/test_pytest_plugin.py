"""The pytest plugin (pointperfect_sim.pytest_plugin, loaded once by its pytest11 entry point): its fixtures give a
running world and leave nothing behind."""

import shutil
import socket

import pytest
from pointperfect_sim import pytest_plugin
from pointperfect_sim.caster import STR2STR, STUNNEL

pytestmark = pytest.mark.lab


def test_the_plugin_is_registered_once(pytestconfig):
    plugins = [p for p in pytestconfig.pluginmanager.get_plugins() if p is pytest_plugin]
    assert len(plugins) == 1


@pytest.mark.skipif(STR2STR is None or STUNNEL is None, reason="rtklib/stunnel not installed")
def test_caster_fixture_serves_its_account(caster, pki):
    assert caster.info()["username"] == pytest_plugin.CASTER_USER
    assert caster.info()["ca"] == str(pki.ca_path)
    with socket.create_connection(("127.0.0.1", caster.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nUser-Agent: NTRIP plugin-test\r\n\r\n")
        assert sock.recv(64).startswith(b"SOURCETABLE 200")


def test_broker_fixture_speaks_mutual_tls(broker, pki):
    assert broker.info()["ca"] == str(pki.ca_path)
    assert broker.pid is not None


@pytest.fixture
def booted(fleets):
    if not (shutil.which("systemd-nspawn") and shutil.which("debootstrap")):
        pytest.skip("systemd-nspawn/debootstrap not installed")
    return fleets(1, prefix="plug")


def test_fleets_fixture_boots_a_running_gateway(booted):
    gw = booted.gateways[0]
    assert gw.state == "running" and gw.name == "plug-01"
    assert gw.run("hostname").stdout.strip() == "plug-01"
