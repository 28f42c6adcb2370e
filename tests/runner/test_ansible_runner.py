"""The provision playbook run through ansible-runner (the engine AWX / Automation Platform uses) against 2 nspawn
gateways, the ZTP simulator and a real Mosquitto: per-host success from runner events, then a no-op second run."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ansible_runner = pytest.importorskip("ansible_runner")

from pointperfect_sim import server  # noqa: E402
from pointperfect_sim.broker import Mosquitto  # noqa: E402
from pointperfect_sim.fleet import Fleet  # noqa: E402
from pointperfect_sim.receiver import ReceiverSim  # noqa: E402

pytestmark = [pytest.mark.fleet, pytest.mark.lab, pytest.mark.slow]

TOKEN = "7d2e4f60-1a3b-4c5d-8e9f-0a1b2c3d4e5f"
N = 2
ZTP_TASK = "Provision PointPerfect credentials (ZTP)"
VENV_BIN = str(Path(sys.executable).parent)  # ansible-playbook of this venv (make test runs .venv/bin/python -m pytest)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root (systemd-nspawn gateways)")
    missing = [t for t in ("systemd-nspawn", "debootstrap", "mosquitto", "ssh") if not shutil.which(t)]
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)} (make deps installs them)")
    work = tmp_path_factory.mktemp("runner")
    sim = server.run_in_thread(work / "sim", {TOKEN: {"plan": "ip", "region": "eu", "broker_host": "127.0.0.1"}})
    broker = receivers = None
    try:
        broker = Mosquitto(sim.sim.pki, work / "broker").start()
        receivers = [ReceiverSim().start() for _ in range(N)]
        with Fleet(N, work / "fleet", prefix="rn", serial_devices=[r.slave_path for r in receivers]) as fleet:
            yield type("Lab", (), {"work": work, "sim": sim, "broker": broker, "fleet": fleet})()
    finally:
        for rx in receivers or ():
            rx.close()
        if broker is not None:
            broker.stop()
        sim.stop()


@pytest.fixture(scope="module")
def runner(lab, collections_path):
    """run() -> ansible_runner.Runner: an AWX-like private data dir (project with site.yml, inventory, env)."""
    pdd = lab.work / "pdd"
    (pdd / "project").mkdir(parents=True)
    (pdd / "inventory/group_vars").mkdir(parents=True)
    (pdd / "project/site.yml").write_text(
        "---\n# AWX project playbook: the collection's provision playbook\n"
        "- name: Provision\n  ansible.builtin.import_playbook: gnss.pointperfect.provision\n"
    )
    shutil.copy(lab.fleet.inventory_path, pdd / "inventory/hosts")
    (pdd / "inventory/group_vars/pointperfect_gateways.yml").write_text(
        f"pointperfect_ztp_api_url: {lab.sim.url}\npointperfect_ztp_ca_path: {lab.sim.ca_path}\n"
        f"pointperfect_ca_file: {lab.sim.ca_path}\npointperfect_mqtt_port: {lab.broker.port}\n"
        f"pointperfect_wheelhouse_cache_dir: {lab.work / 'wheelhouse-cache'}\n"
    )
    # what an AWX credential / EE provides: the token in the environment, the collection on the collections path
    envvars = {"POINTPERFECT_ZTP_TOKEN": TOKEN, "ANSIBLE_COLLECTIONS_PATH": collections_path,
               "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
               "PATH": os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")])}  # fmt: skip

    def run():
        return ansible_runner.run(private_data_dir=str(pdd), playbook="site.yml", envvars=envvars, quiet=True, forks=N)

    return run


def host_events(result) -> dict:
    """{host: [(event, task, res)]} from the runner's event stream."""
    out: dict = {}
    for ev in result.events:
        data = ev.get("event_data", {})
        if ev["event"].startswith("runner_on_") and data.get("host"):
            out.setdefault(data["host"], []).append((ev["event"], data.get("task"), data.get("res", {})))
    return out


def final_stats(result) -> dict:
    stats = [ev["event_data"] for ev in result.events if ev["event"] == "playbook_on_stats"]
    assert len(stats) == 1
    return stats[0]


def ztp_result(events: list) -> dict:
    found = [res for kind, task, res in events if task == ZTP_TASK and kind == "runner_on_ok"]
    assert len(found) == 1, events
    return found[0]


def test_first_run_succeeds_per_host(lab, runner):
    calls = lab.sim.calls()["total"]
    r = runner()
    stdout = r.stdout.read()[-4000:]
    assert (r.status, r.rc) == ("successful", 0), stdout
    names = {gw.name for gw in lab.fleet.gateways}
    events = host_events(r)
    assert set(events) >= names, stdout
    for name in names:
        kinds = {kind for kind, _, _ in events[name]}
        assert not kinds & {"runner_on_failed", "runner_on_unreachable"}, (name, stdout)
        assert ztp_result(events[name])["api_called"] is True
        assert ztp_result(events[name])["changed"] is True
    stats = final_stats(r)
    for name in names:
        assert stats["changed"].get(name, 0) > 0
        assert stats["failures"].get(name, 0) == 0 and stats["dark"].get(name, 0) == 0
    assert lab.sim.calls()["total"] - calls == 2 * N  # each new device answers "not activated" first, then is retried
    for gw in lab.fleet.gateways:
        assert gw.run("systemctl is-active pointperfect-forwarder", check=False).stdout.strip() == "active"


def test_second_run_changes_nothing(lab, runner):
    calls = lab.sim.calls()["total"]
    r = runner()
    stdout = r.stdout.read()[-4000:]
    assert (r.status, r.rc) == ("successful", 0), stdout
    events = host_events(r)
    stats = final_stats(r)
    for gw in lab.fleet.gateways:
        assert stats["changed"].get(gw.name, 0) == 0, stdout
        assert stats["ok"].get(gw.name, 0) > 0
        changed = [task for _, task, res in events[gw.name] if res.get("changed")]
        assert changed == [], changed
        # a gateway with nothing to do leaves the role before the ZTP task (decided from the probe's read)
        assert not [task for _, task, _ in events[gw.name] if task == ZTP_TASK], events[gw.name]
    assert lab.sim.calls()["total"] == calls
