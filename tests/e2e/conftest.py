"""Session fixtures of the fleet end-to-end test: ZTP simulator, Mosquitto (mTLS), NTRIP casters (TLS), one receiver
simulator per gateway (plus a NEO-D9S for the L-band gateway), the nspawn fleet and an inventory that mixes IP, L-band
and NTRIP plans. Everything boots once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pointperfect_sim import frames as F
from pointperfect_sim import server
from pointperfect_sim.broker import Mosquitto
from pointperfect_sim.caster import Caster
from pointperfect_sim.fleet import Fleet
from pointperfect_sim.proc import free_port
from pointperfect_sim.receiver import D9sSim, ReceiverSim
from pointperfect_sim.replay import MqttReplayer

MQTT_TOKEN = "3c1a7f52-6b0e-4c2d-9f41-7a5e00000a01"  # IP plan, every region: given through POINTPERFECT_ZTP_TOKEN
NTRIP_TOKEN = "3c1a7f52-6b0e-4c2d-9f41-7a5e00000a02"  # Flex NTRIP: given through the pointperfect_ztp_token var
EU_US_TOKEN = "3c1a7f52-6b0e-4c2d-9f41-7a5e00000a03"  # IP plan listing EU and US
LBAND_TOKEN = "3c1a7f52-6b0e-4c2d-9f41-7a5e00000a04"  # L-band-only plan: corrections come from the D9S
N_GATEWAYS = 7
NTRIP_HOSTS = ("gw-04", "gw-05")
US_HOST = "gw-06"  # region auto: its receiver reports a US position, its plan lists EU and US
LBAND_HOST = "gw-07"  # L-band plan, a simulated NEO-D9S on its second serial port
US_POSITION = (39.7, -105.0, 1600.0)  # Denver
# The region each IP gateway chooses from its receiver's position (the simulated receivers default to (52, 5)).
REGION_OF = {"gw-01": "eu", "gw-02": "eu", "gw-03": "eu", US_HOST: "us"}
TOKEN_OF = {"gw-04": NTRIP_TOKEN, "gw-05": NTRIP_TOKEN, US_HOST: EU_US_TOKEN, LBAND_HOST: LBAND_TOKEN}
GUEST_D9S = "/dev/ttyACM1"
LBAND_FREQUENCIES_TOPIC = "/pp/frequencies/Lb"
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
    """Simulator + broker + casters sharing one PKI; yields a namespace with everything the tests need.

    A plan lists every region it covers unless `region` narrows it (the simulator's default), and a new device is
    "not activated" on its first call (the ztp module retries within the run). The NTRIP profile gives every device
    one shared caster account, and a caster takes one session per account: each NTRIP gateway gets its own caster
    (its pointperfect_ntrip_port), both reached as the same 127.0.0.1 host of the credentials.
    """
    ports = {host: (free_port(), free_port()) for host in NTRIP_HOSTS}  # (plain, TLS) of each host's caster
    profiles = {
        MQTT_TOKEN: {"plan": "ip", "broker_host": "127.0.0.1", "not_activated_calls": 1},
        EU_US_TOKEN: {"plan": "ip", "region": ["eu", "us"], "broker_host": "127.0.0.1", "not_activated_calls": 1},
        LBAND_TOKEN: {"plan": "lband", "broker_host": "127.0.0.1", "not_activated_calls": 1},
        NTRIP_TOKEN: {
            "plan": "ntrip",
            "not_activated_calls": 1,
            "ntrip": {
                "host": "127.0.0.1",
                "port": ports[NTRIP_HOSTS[0]][0],
                "mountpoint": "NEAR-SPARTN",
                "shared_credentials": {"user": CASTER_USER, "password": CASTER_PASSWORD},
            },
        },
    }
    sim = server.run_in_thread(e2e_dir / "sim", profiles)
    pki = sim.sim.pki
    broker = replayer = None
    casters: dict[str, Caster] = {}
    try:
        broker = Mosquitto(pki, e2e_dir / "broker").start()
        for host, (port, tls_port) in ports.items():
            caster = Caster(
                e2e_dir / f"caster-{host}", port, tls_port, "NEAR-SPARTN", CASTER_USER, CASTER_PASSWORD, pki
            )
            casters[host] = caster.start()
        replayer = MqttReplayer(broker).connect()
        # the L-band frequencies, retained as the service keeps them (the D9S is tuned from them)
        replayer.publish(LBAND_FREQUENCIES_TOPIC, F.frequencies_payload(F.LBAND_FREQUENCIES_MHZ), retain=True)
        yield type(
            "Lab",
            (),
            {"sim": sim, "pki": pki, "broker": broker, "casters": casters, "replayer": replayer},
        )()
    finally:
        for part in (replayer, *casters.values(), broker):
            if part is not None:
                part.stop()
        sim.stop()


@pytest.fixture(scope="session")
def receivers(e2e_prereqs):
    """One receiver per gateway (gw-01 first); US_HOST's reports a fix in Colorado."""
    rxs = [
        ReceiverSim(position=US_POSITION).start() if f"gw-{i + 1:02d}" == US_HOST else ReceiverSim().start()
        for i in range(N_GATEWAYS)
    ]
    yield rxs
    for rx in rxs:
        rx.close()


@pytest.fixture(scope="session")
def d9s(e2e_prereqs):
    """The L-band gateway's NEO-D9S: emits UBX-RXM-PMP once the forwarder has tuned it."""
    eu_hz = round(float(F.LBAND_FREQUENCIES_MHZ["eu"]) * 1e6)
    sim = D9sSim(beam_hz=eu_hz).start()  # the receiver is in Europe: only the EU beam is in view
    yield sim
    sim.close()


@pytest.fixture(scope="session")
def fleet(e2e_prereqs, e2e_dir, receivers, d9s):
    second = [d9s.slave_path if f"gw-{i + 1:02d}" == LBAND_HOST else None for i in range(N_GATEWAYS)]
    with Fleet(
        N_GATEWAYS, e2e_dir / "fleet", serial_devices=[rx.slave_path for rx in receivers], serial_devices2=second
    ) as f:
        assert f.gateways[-1].name == LBAND_HOST and f.gateways[-1].guest_serial_device2 == GUEST_D9S
        yield f


@pytest.fixture(scope="session")
def inventory(fleet, lab, e2e_dir) -> Path:
    """The harness inventory plus group_vars (lab endpoints) and host_vars (tokens other than the MQTT one, the NTRIP
    hosts' caster TLS ports, the L-band host's D9S)."""
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
    for host, token in TOKEN_OF.items():
        lines = [f"pointperfect_ztp_token: {token}"]
        if host in NTRIP_HOSTS:  # not u-blox's caster: its TLS port is set explicitly
            lines.append(f"pointperfect_ntrip_port: {lab.casters[host].tls_port}")
        if host == LBAND_HOST:
            lines.append(f"pointperfect_lband_device: {GUEST_D9S}")
        (inv / "host_vars" / f"{host}.yml").write_text("\n".join(lines) + "\n")
    return inv


@pytest.fixture(scope="session")
def playbook(ansible_env, fleet, inventory, e2e_dir):
    """run(playbook, *args, env=...) -> Run; the MQTT token comes from the controller environment, as documented
    (`env` adds to or overrides that environment for one run)."""
    base_env = fleet.ansible_env(ansible_env)
    base_env["POINTPERFECT_ZTP_TOKEN"] = MQTT_TOKEN
    log = e2e_dir / "ansible.log"

    def run(name: str, *args: str, timeout: float = 600, env: dict | None = None) -> Run:
        argv = [ANSIBLE_PLAYBOOK, f"gnss.pointperfect.{name}", "-i", str(inventory), *args]
        t0 = time.monotonic()
        proc = subprocess.run(
            argv, env={**base_env, **(env or {})}, capture_output=True, text=True, timeout=timeout, check=False
        )
        out = proc.stdout + proc.stderr
        with log.open("a") as f:
            f.write(f"\n===== {' '.join(argv)} (rc {proc.returncode})\n{out}")
        recap = {
            m.group(1): dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups()[1:]), strict=True))
            for m in RECAP.finditer(out)
        }
        return Run(argv, proc.returncode, out, round(time.monotonic() - t0, 1), recap)

    return run
