"""Preflight on a real old gateway (issue 18): a mixed fleet, one Debian 11 gateway (Python 3.9, booted from a
bullseye rootfs) and one Debian 12 gateway, provisioned in one run against the ZTP simulator and a real Mosquitto.
Check mode first predicts both outcomes; then the old gateway fails in preflight with no ZTP call and nothing changed
on it, while the new one is provisioned and its forwarder runs. The tests run in file order on one fleet."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pointperfect_sim import server
from pointperfect_sim.broker import Mosquitto
from pointperfect_sim.fleet import Fleet
from pointperfect_sim.receiver import ReceiverSim

pytestmark = [pytest.mark.fleet, pytest.mark.lab, pytest.mark.slow]

TOKEN = "3c1a7f52-6b0e-4c2d-9f41-7a5e00000b01"
OLD, NEW = "pf-01", "pf-02"  # Debian 11 (bullseye), Debian 12 (bookworm)
SUITES = ["bullseye", "bookworm"]
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
_VENV_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
ANSIBLE_PLAYBOOK = str(_VENV_PLAYBOOK) if _VENV_PLAYBOOK.exists() else "ansible-playbook"
TOOLS = ("systemd-nspawn", "debootstrap", "mosquitto", "ssh")
PYTHON_LINE = re.compile(
    r"pf-01: Python 3\.9\.\d+ on the gateway; the forwarder needs 3\.10\+ "
    r"\(Debian 12, Ubuntu 22\.04, Raspberry Pi OS bookworm or later\)"
)
COLLECTION = ("ansible_collections", "gnss", "pointperfect", "plugins", "modules")
TIMINGS: dict[str, float] = {}


@dataclass
class Run:
    rc: int
    out: str
    seconds: float
    recap: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("the preflight fleet test needs root (systemd-nspawn)")
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)} (make deps installs them)")
    return tmp_path_factory.mktemp("preflight")


@pytest.fixture(scope="module")
def lab(workdir):
    sim = server.run_in_thread(
        workdir / "sim", {TOKEN: {"plan": "ip", "broker_host": "127.0.0.1", "not_activated_calls": 1}}
    )
    broker = None
    try:
        broker = Mosquitto(sim.sim.pki, workdir / "broker").start()
        yield type("Lab", (), {"sim": sim, "pki": sim.sim.pki, "broker": broker})()
    finally:
        if broker is not None:
            broker.stop()
        sim.stop()


@pytest.fixture(scope="module")
def fleet(workdir):
    receivers = [ReceiverSim().start() for _ in SUITES]
    try:
        with Fleet(
            len(SUITES), workdir / "fleet", prefix="pf", suites=SUITES, serial_devices=[r.slave_path for r in receivers]
        ) as f:
            TIMINGS["boot"] = f.boot_seconds
            yield f
    finally:
        for r in receivers:
            r.close()


@pytest.fixture(scope="module")
def playbook(ansible_env, fleet, lab, workdir):
    inv = workdir / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    shutil.copy(fleet.inventory_path, inv / "hosts.ini")
    (inv / "group_vars" / "pointperfect_gateways.yml").write_text(
        f"pointperfect_ztp_api_url: {lab.sim.url}\n"
        f"pointperfect_ztp_ca_path: {lab.sim.ca_path}\n"
        f"pointperfect_ca_file: {lab.pki.ca_path}\n"
        f"pointperfect_mqtt_port: {lab.broker.port}\n"
    )
    env = fleet.ansible_env(ansible_env)
    env["POINTPERFECT_ZTP_TOKEN"] = TOKEN
    log = workdir / "ansible.log"

    def run(*args: str, name: str = "provision") -> Run:
        argv = [ANSIBLE_PLAYBOOK, f"gnss.pointperfect.{name}", "-i", str(inv), *args]
        t0 = time.monotonic()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
        out = proc.stdout + proc.stderr
        with log.open("a") as f:
            f.write(f"\n===== {' '.join(argv)} (rc {proc.returncode})\n{out}")
        recap = {
            m.group(1): dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups()[1:]), strict=True))
            for m in RECAP.finditer(out)
        }
        return Run(proc.returncode, out, round(time.monotonic() - t0, 1), recap)

    return run


def by_name(fleet):
    return {gw.name: gw for gw in fleet.gateways}


def untouched(gw) -> str:
    """What the role would have left on a gateway: its config and install directories, its account."""
    probe = "ls -d /etc/pointperfect /opt/pointperfect 2>/dev/null; getent passwd pointperfect"
    probe += "; getent group pointperfect"
    return gw.run(probe, check=False).stdout.strip()


def failure_lines(out: str, host: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(f"fatal: [{host}]")]


def test_the_fleet_is_mixed(fleet):
    gws = by_name(fleet)
    versions = {name: gw.run("python3 -c 'import sys; print(sys.version_info[:2])'").stdout.strip()
                for name, gw in gws.items()}  # fmt: skip
    assert versions == {OLD: "(3, 9)", NEW: "(3, 11)"}, versions
    for gw in gws.values():
        assert gw.run("cat /proc/1/comm").stdout.strip() == "systemd"
    assert gws[OLD].suite == "bullseye" and gws[NEW].suite == "bookworm"


def test_check_mode_predicts_both_outcomes(fleet, lab, playbook):
    before = lab.sim.calls()
    run = playbook("--check")
    TIMINGS["check"] = run.seconds
    assert run.rc != 0, run.out[-4000:]
    assert run.recap[OLD]["failed"] == 1 and run.recap[OLD]["changed"] == 0, run.recap
    assert run.recap[NEW]["failed"] == 0 and run.recap[NEW]["changed"] > 0, run.recap
    (fatal,) = failure_lines(run.out, OLD)
    assert PYTHON_LINE.search(fatal), fatal
    assert "Preflight" in run.out.split(fatal)[0].rsplit("TASK [", 1)[1], "the failure is not the preflight's"
    assert lab.sim.calls() == before
    for gw in fleet.gateways:
        assert untouched(gw) == "", f"{gw.name}: check mode left {untouched(gw)}"


def test_old_gateway_fails_in_preflight_new_one_is_provisioned(fleet, lab, playbook):
    gws = by_name(fleet)
    before = lab.sim.calls()
    run = playbook()
    TIMINGS["provision"] = run.seconds
    assert run.rc != 0, run.out[-4000:]
    # the old gateway: one line naming the cause and the fix, from the preflight, nothing changed
    (fatal,) = failure_lines(run.out, OLD)
    assert PYTHON_LINE.search(fatal), fatal
    assert "non-zero return code" not in run.out and "set -eu" not in run.out
    assert "Preflight" in run.out.split(fatal)[0].rsplit("TASK [", 1)[1]
    assert run.recap[OLD] == {"ok": run.recap[OLD]["ok"], "changed": 0, "unreachable": 0, "failed": 1}, run.recap
    assert untouched(gws[OLD]) == "", untouched(gws[OLD])
    # no ZTP call for it: every call of the run is the new gateway's (a new device: not activated, then retried)
    calls = lab.sim.calls()
    new_device = f"{TOKEN}/{gws[NEW].hardware_id}"
    old_device = f"{TOKEN}/{gws[OLD].hardware_id}"
    assert old_device not in calls["by_device"], calls
    assert calls["total"] - before["total"] == 2 and calls["by_device"] == {new_device: 2}, calls
    # the new gateway went on and is fully provisioned
    assert run.recap[NEW]["failed"] == 0 and run.recap[NEW]["changed"] > 0, run.recap
    new = gws[NEW]
    state = new.run("systemctl is-active pointperfect-forwarder", check=False).stdout.strip()
    assert state == "active", new.run("journalctl -u pointperfect-forwarder --no-pager -n 40", check=False).stdout
    assert new.run("stat -c '%a %U:%G' /etc/pointperfect/credentials.json").stdout.strip() == "640 root:pointperfect"
    assert new.run("cat /opt/pointperfect/.pointperfect-build", check=False).returncode == 0


def test_a_full_disk_during_the_install_is_named_in_one_line(fleet, lab, playbook):
    """A 3 MiB tmpfs over /opt/pointperfect: the unpacked zipapp (2.3 MB) fits, its byte-code (2.2 MB more) does not.
    The install fails with one line naming ENOSPC, not the install script's output."""
    new = by_name(fleet)[NEW]
    new.run("mount -t tmpfs -o size=3m tmpfs /opt/pointperfect")
    try:
        run = playbook("--limit", NEW)
    finally:
        new.run("umount /opt/pointperfect", check=False)
    TIMINGS["install_enospc"] = run.seconds
    assert run.rc != 0 and run.recap[NEW]["failed"] == 1, run.out[-4000:]
    (fatal,) = failure_lines(run.out, NEW)
    assert (
        f"{NEW}: the forwarder install failed: the disk is full (ENOSPC) under /opt/pointperfect; free space on the "
        "gateway (df -h /opt/pointperfect) and re-run" in fatal
    ), fatal
    assert "set -eu" not in run.out and "non-zero return code" not in run.out
    assert "Name the cause of a failed install" in run.out.split(fatal)[0].rsplit("TASK [", 1)[1]


def test_fleet_report_shows_the_old_gateway_unsupported(fleet, playbook, workdir, ansible_env):
    module = Path(ansible_env["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)[0], *COLLECTION, "gateway_info.py")
    if not module.exists() or "_preflight" not in module.read_text():
        pytest.skip("gateway_info returns no preflight yet (gateway.preflight): the report cannot tell")
    report_dir = workdir / "report"
    run = playbook("-e", f"pointperfect_report_dir={report_dir}", name="status")
    TIMINGS["status"] = run.seconds
    assert run.rc == 0, run.out[-4000:]
    rows = {r["host"]: r for r in json.loads((report_dir / "status.json").read_text())["gateways"]}
    assert rows[OLD]["health"] == "unsupported", rows[OLD]
    assert re.search(PYTHON_LINE.pattern.removeprefix("pf-01: "), rows[OLD]["unsupported"][0]), rows[OLD]
    assert rows[NEW]["health"] != "unsupported" and rows[NEW]["forwarder_state"] == "active", rows[NEW]
    assert f"{OLD}" in run.out and "UNSUPPORTED" in run.out


def test_report(fleet):
    print(f"\npreflight fleet timings (s): {TIMINGS}")
