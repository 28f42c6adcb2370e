"""Session fixtures of the fleet end-to-end test: ZTP simulator, Mosquitto (mTLS), NTRIP caster (TLS), one receiver
simulator per gateway, the nspawn fleet and an inventory that mixes MQTT and NTRIP plans. Everything boots once."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pointperfect_sim import server
from pointperfect_sim.lab import Caster, Mosquitto
from pointperfect_sim.receiver import ReceiverSim
from pointperfect_sim.replay import MqttReplayer

from tests.harness.fleet import Fleet

MQTT_TOKEN = "3c1a7f52-6b0e-4c2d-9f41-7a5e00000a01"  # IP plan, EU: given through POINTPERFECT_ZTP_TOKEN
NTRIP_TOKEN = "3c1a7f52-6b0e-4c2d-9f41-7a5e00000a02"  # Flex NTRIP: given through the pointperfect_ztp_token var
N_GATEWAYS = 5
NTRIP_HOSTS = ("gw-04", "gw-05")
CASTER_USER, CASTER_PASSWORD = "e2e-caster", "e2e-Caster-Secret-31"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
_VENV_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
ANSIBLE_PLAYBOOK = str(_VENV_PLAYBOOK) if _VENV_PLAYBOOK.exists() else "ansible-playbook"
TOOLS = ("systemd-nspawn", "debootstrap", "mosquitto", "str2str", "stunnel4", "ssh")


@dataclass
class Run:
    """One ansible-playbook run: output, recap per host ({host: {ok, changed, unreachable, failed}}), seconds."""

    argv: list[str]
    rc: int
    out: str
    seconds: float
    recap: dict = field(default_factory=dict)

    def changed(self) -> dict:
        return {h: r["changed"] for h, r in self.recap.items()}


def _adjacent_free_ports() -> tuple[int, int]:
    """Two free ports P, P+1 on loopback: ZTP NTRIP credentials imply tls_port = port + 1."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("0.0.0.0", port))  # str2str binds every interface
                b.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port, port + 1
    raise RuntimeError("no two adjacent free ports")


@pytest.fixture(scope="session")
def e2e_prereqs():
    if os.geteuid() != 0:
        pytest.skip("the fleet end-to-end test needs root (systemd-nspawn)")
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.fail(f"missing tools for the e2e test: {', '.join(missing)} (make deps installs them)")


@pytest.fixture(scope="session")
def e2e_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def lab(e2e_prereqs, e2e_dir):
    """Simulator + broker + caster sharing one PKI; yields a namespace with everything the tests need."""

    ntrip_port, ntrip_tls_port = _adjacent_free_ports()
    profiles = {
        MQTT_TOKEN: {"plan": "ip", "region": "eu", "broker_host": "127.0.0.1"},
        NTRIP_TOKEN: {
            "plan": "ntrip",
            "ntrip": {
                "host": "127.0.0.1",
                "port": ntrip_port,
                "mountpoint": "NEAR-SPARTN",
                "shared_credentials": {"user": CASTER_USER, "password": CASTER_PASSWORD},
            },
        },
    }
    sim = server.run_in_thread(e2e_dir / "sim", profiles)
    pki = sim.sim.pki
    broker = caster = replayer = None
    try:
        broker = Mosquitto(pki, e2e_dir / "broker").start()
        caster = Caster(
            e2e_dir / "caster", ntrip_port, ntrip_tls_port, "NEAR-SPARTN", CASTER_USER, CASTER_PASSWORD, pki
        ).start()
        replayer = MqttReplayer(broker).connect()
        yield type("Lab", (), {"sim": sim, "pki": pki, "broker": broker, "caster": caster, "replayer": replayer})()
    finally:
        for part in (replayer, caster, broker):
            if part is not None:
                part.stop()
        sim.stop()


@pytest.fixture(scope="session")
def receivers(e2e_prereqs):
    rxs = [ReceiverSim().start() for _ in range(N_GATEWAYS)]
    yield rxs
    for rx in rxs:
        rx.close()


@pytest.fixture(scope="session")
def fleet(e2e_prereqs, e2e_dir, receivers):
    with Fleet(N_GATEWAYS, e2e_dir / "fleet", serial_devices=[rx.slave_path for rx in receivers]) as f:
        yield f


@pytest.fixture(scope="session")
def inventory(fleet, lab, e2e_dir) -> Path:
    """The harness inventory plus group_vars (lab endpoints) and host_vars (NTRIP hosts get their own token)."""
    inv = e2e_dir / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "host_vars").mkdir()
    shutil.copy(fleet.inventory_path, inv / "hosts.ini")
    (inv / "group_vars" / "pointperfect_gateways.yml").write_text(
        "# e2e: the lab's simulator, broker and caster\n"
        f"pointperfect_ztp_api_url: {lab.sim.url}\n"
        f"pointperfect_ztp_ca_path: {lab.sim.ca_path}\n"
        f"pointperfect_ca_file: {lab.pki.ca_path}\n"
        f"pointperfect_mqtt_port: {lab.broker.port}\n"
        "pointperfect_ztp_tags_from_groups: true\n"
        "pointperfect_ntrip_gga_interval: 2\n"
        "pointperfect_summary_interval: 10\n"
    )
    for host in NTRIP_HOSTS:
        (inv / "host_vars" / f"{host}.yml").write_text(f"pointperfect_ztp_token: {NTRIP_TOKEN}\n")
    return inv


@pytest.fixture(scope="session")
def playbook(ansible_env, fleet, inventory, e2e_dir):
    """run(playbook, *args) -> Run; the MQTT token comes from the controller environment, as documented."""
    env = fleet.ansible_env(ansible_env)
    env["POINTPERFECT_ZTP_TOKEN"] = MQTT_TOKEN
    log = e2e_dir / "ansible.log"

    def run(name: str, *args: str, timeout: float = 600) -> Run:
        argv = [ANSIBLE_PLAYBOOK, f"gnss.pointperfect.{name}", "-i", str(inventory), *args]
        t0 = time.monotonic()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        out = proc.stdout + proc.stderr
        with log.open("a") as f:
            f.write(f"\n===== {' '.join(argv)} (rc {proc.returncode})\n{out}")
        recap = {
            m.group(1): dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups()[1:]), strict=True))
            for m in RECAP.finditer(out)
        }
        return Run(argv, proc.returncode, out, round(time.monotonic() - t0, 1), recap)

    return run
