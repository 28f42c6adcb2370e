"""Tests of the nspawn fleet harness: real gateways boot, Ansible reaches them, the pty serial port works both ways,
overlay writes stay private, and teardown leaves nothing running."""

import ctypes
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import termios
import time
import tty
from pathlib import Path

import pytest
from pointperfect_sim import fleet as fl
from pointperfect_sim.fleet import Fleet, _alive

pytestmark = pytest.mark.skipif(
    not (shutil.which("systemd-nspawn") and shutil.which("debootstrap")),
    reason="systemd-nspawn/debootstrap not installed (apt-get install systemd-container debootstrap)",
)

ANSIBLE = shutil.which("ansible", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
PAYLOAD = bytes(range(256))  # every byte value: proves the line is raw and byte-exact

# Runs inside a gateway: open the serial port, send PAYLOAD, then read 256 bytes and print them as hex.
GUEST_ECHO = """
import os, sys, tty
fd = os.open(sys.argv[1] if len(sys.argv) > 1 else "/dev/ttyACM0", os.O_RDWR | os.O_NOCTTY)
tty.setraw(fd)
os.write(fd, bytes(range(256)))
buf = b""
while len(buf) < 256:
    buf += os.read(fd, 256 - len(buf))
print(buf.hex())
"""


@pytest.fixture(scope="module")
def ansible_env() -> dict:
    """Environment for ansible subprocesses: plain output, no retry files (the fleet's ansible.cfg does the rest)."""
    return dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="False")


@pytest.fixture(scope="module")
def ptys():
    """One host pty per gateway plus a second one for gw-01; the host keeps the slaves open (raw) so the masters
    never see EIO."""
    pairs = [os.openpty() for _ in range(3)]
    for _master, slave in pairs:
        tty.setraw(slave, termios.TCSANOW)
    yield pairs
    for master, slave in pairs:
        os.close(master)
        os.close(slave)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, ptys):
    serial = [os.ttyname(s) for _m, s in ptys]
    with Fleet(2, tmp_path_factory.mktemp("fleet"), serial_devices=serial[:2], serial_devices2=[serial[2], None]) as f:
        yield f


def _ansible(fleet, ansible_env, *args):
    proc = subprocess.run([ANSIBLE, "pointperfect_gateways", "-o", *args], env=fleet.ansible_env(ansible_env),
                          cwd=fleet.workdir, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = dict(re.findall(r"^(\S+) \| SUCCESS => (\{.*\})$", proc.stdout, re.M))
    return {host: json.loads(body) for host, body in results.items()}


def _read_exactly(fd, n, timeout=20.0):
    buf = b""
    deadline = time.monotonic() + timeout
    while len(buf) < n and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            buf += os.read(fd, n - len(buf))
    return buf


def _round_trip(gw, master, command):
    """Guest sends PAYLOAD over the port, host answers with the reverse; both sides must get exact bytes."""
    proc = subprocess.Popen(gw.ssh_argv(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    proc.stdin.write(GUEST_ECHO)
    proc.stdin.close()
    proc.stdin = None  # so communicate() does not flush the closed pipe
    got = _read_exactly(master, len(PAYLOAD))
    os.write(master, PAYLOAD[::-1])
    out, err = proc.communicate(timeout=30)
    assert got == PAYLOAD, f"host read {got!r}; guest stderr: {err}"
    assert proc.returncode == 0, err
    assert bytes.fromhex(out.strip()) == PAYLOAD[::-1]


def test_boot_state_and_inventory(fleet):
    assert [gw.state for gw in fleet.gateways] == ["running", "running"]
    inventory = fleet.inventory_path.read_text()
    assert "[pointperfect_gateways]" in inventory
    for gw in fleet.gateways:
        assert f"ansible_port={gw.ssh_port}" in inventory
        assert f"pointperfect_metrics_port={gw.metrics_port}" in inventory
    assert "pipelining = True" in fleet.ansible_cfg_path.read_text()
    state = json.loads(fleet.state_path.read_text())
    assert [g["pid"] for g in state["gateways"]] == [gw.pid for gw in fleet.gateways]
    assert len({gw.ssh_port for gw in fleet.gateways} | {gw.metrics_port for gw in fleet.gateways}) == 4


def test_ansible_ping_and_service_mgr(fleet, ansible_env):
    names = {gw.name for gw in fleet.gateways}
    pings = _ansible(fleet, ansible_env, "-m", "ansible.builtin.ping")
    assert set(pings) == names and all(r["ping"] == "pong" for r in pings.values())
    facts = _ansible(fleet, ansible_env, "-m", "ansible.builtin.setup", "-a", "filter=ansible_service_mgr")
    assert {h: r["ansible_facts"]["ansible_service_mgr"] for h, r in facts.items()} == dict.fromkeys(names, "systemd")


def test_a_gateway_holds_the_inotify_instances_budgeted(fleet):
    """INOTIFY_PER_GATEWAY sizes fs.inotify.max_user_instances (issue 16): a booted gateway must not need more."""
    held = [gw.inotify_instances() for gw in fleet.gateways]
    assert all(0 < n <= fl.INOTIFY_PER_GATEWAY for n in held), held


def test_inotify_instances_counts_open_instances():
    libc = ctypes.CDLL(None, use_errno=True)
    before = fl.inotify_instances([os.getpid()], uid=os.geteuid())
    fd = libc.inotify_init()
    assert fd >= 0, ctypes.get_errno()
    try:
        assert fl.inotify_instances([os.getpid()], uid=os.geteuid()) == before + 1
        assert fl.inotify_instances([os.getpid()], uid=os.geteuid() + 1) == 0
    finally:
        os.close(fd)


def test_inotify_limit_is_sized_from_the_fleet_and_what_is_in_use(monkeypatch, tmp_path):
    knob = tmp_path / "max_user_instances"
    knob.write_text("128\n")
    monkeypatch.setattr(fl, "INOTIFY_KNOB", knob)
    monkeypatch.setattr(fl, "inotify_instances", lambda: 150)  # e.g. another fleet of 20 already running
    needed = 150 + 40 * fl.INOTIFY_PER_GATEWAY + fl.INOTIFY_HEADROOM
    assert fl.ensure_inotify_instances(40) == needed and int(knob.read_text()) == needed
    knob.write_text("100000\n")
    assert fl.ensure_inotify_instances(40) == 100000 and knob.read_text() == "100000\n"  # never lowered
    read_only = fl.Path("/proc/sys/kernel/ngroups_max")  # a sysctl not even root may write (mode 0444)
    monkeypatch.setattr(fl, "INOTIFY_KNOB", read_only)
    monkeypatch.setattr(fl, "inotify_instances", lambda: int(read_only.read_text()))
    needed = int(read_only.read_text()) + 40 * fl.INOTIFY_PER_GATEWAY + fl.INOTIFY_HEADROOM
    with pytest.raises(fl.FleetError, match=f"sysctl -w fs.inotify.max_user_instances={needed}"):
        fl.ensure_inotify_instances(40)


def test_identities_differ(fleet):
    seen = []
    for gw in fleet.gateways:
        out = gw.run(
            "hostname; cat /etc/machine-id; cat /etc/ssh/ssh_host_ed25519_key.pub; cat /var/lib/dbus/machine-id"
        ).stdout.splitlines()
        assert out[0] == gw.name
        assert out[1] == gw.machine_id
        assert out[3] == gw.machine_id  # dbus (Ansible's machine_id fact) must not share one id across gateways
        seen.append(out)
    assert len({o[0] for o in seen}) == len({o[1] for o in seen}) == len({o[2] for o in seen}) == 2


def test_sshd_only_on_loopback_port(fleet):
    for gw in fleet.gateways:
        listen = gw.run("ss -Hltnp | grep sshd").stdout
        assert re.findall(r"(\S+):(\d+)\s", listen) == [("127.0.0.1", str(gw.ssh_port))], listen


def test_pty_round_trip_over_ssh(fleet, ptys):
    for gw, (master, _slave) in zip(fleet.gateways, ptys[:2], strict=True):
        _round_trip(gw, master, "python3 -")


def test_second_serial_device(fleet, ptys):
    """gw-01's second pty is bound at /dev/ttyACM1 (a NEO-D9S in the e2e test); gw-02 has none."""
    gw, other = fleet.gateways
    assert gw.guest_serial_device2 == "/dev/ttyACM1" and gw.serial_device2 == os.ttyname(ptys[2][1])
    _round_trip(gw, ptys[2][0], "python3 - /dev/ttyACM1")
    assert other.serial_device2 is None
    assert other.run("test -e /dev/ttyACM1", check=False).returncode == 1


def test_transient_service_opens_device(fleet, ptys):
    """A sandboxed service as an unprivileged user in `dialout`, the way the forwarder will run, uses the port."""
    gw, (master, _slave) = fleet.gateways[0], ptys[0]
    _round_trip(gw, master, "systemd-run --quiet --wait --pipe -p User=nobody -p SupplementaryGroups=dialout "
                            "-p DevicePolicy=closed -p 'DeviceAllow=/dev/ttyACM0 rw' -p ProtectSystem=strict "
                            "-p NoNewPrivileges=yes python3 -")  # fmt: skip


def test_overlay_writes_do_not_touch_the_cache(fleet):
    gw, other = fleet.gateways
    gw.run("echo leak > /etc/pp-leak-test && mkdir -p /opt/pp-leak-test && sync")
    assert gw.run("cat /etc/pp-leak-test").stdout == "leak\n"
    assert not (fleet.rootfs / "etc/pp-leak-test").exists()
    assert not (fleet.rootfs / "opt/pp-leak-test").exists()
    assert other.run("test -e /etc/pp-leak-test", check=False).returncode == 1


def test_teardown_leaves_nothing(fleet):
    pids = [gw.pid for gw in fleet.gateways]
    cgroups = [cg for gw in fleet.gateways for cg in gw.cgroups]
    machines = [gw.machine.encode() for gw in fleet.gateways]
    fleet.down()
    fleet.down()  # idempotent
    assert not any(_alive(pid) for pid in pids)
    assert not any(Path(cg).exists() for cg in cgroups)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        assert not any(m in cmdline for m in machines), f"left behind: {proc.name} {cmdline!r}"
    for gw in fleet.gateways:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", gw.ssh_port)) != 0, f"{gw.name}: sshd still listening"
    assert json.loads(fleet.state_path.read_text())["running"] is False


def test_cli_up_down(tmp_path, ansible_env):
    cli = [sys.executable, "-m", "pointperfect_sim.fleet"]
    run = {"capture_output": True, "text": True, "timeout": 300}
    up = subprocess.run([*cli, "up", "-n", "1", "--dir", str(tmp_path), "--prefix", "cli"], **run)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((tmp_path / "fleet.json").read_text())
        assert state["running"] and state["gateways"][0]["name"] == "cli-01"
        env = dict(ansible_env, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"))
        ping = subprocess.run([ANSIBLE, "pointperfect_gateways", "-m", "ansible.builtin.ping"], env=env, **run)
        assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr
    finally:
        down = subprocess.run([*cli, "down", "--dir", str(tmp_path)], **run)
    assert down.returncode == 0 and "stopped 1" in down.stdout, down.stdout + down.stderr
    again = subprocess.run([*cli, "down", "--dir", str(tmp_path)], **run)
    assert again.returncode == 0 and "stopped 0" in again.stdout
    assert not _alive(state["gateways"][0]["pid"])


def test_the_suite_is_a_setting(monkeypatch, tmp_path):
    """bookworm by default; PP_ROOTFS_SUITE or suite=/suites= choose another, cached beside it (rootfs-<suite>-v<N>)."""
    monkeypatch.delenv("PP_ROOTFS_SUITE", raising=False)
    monkeypatch.delenv("PP_ROOTFS_CACHE", raising=False)
    assert fl.rootfs_path() == fl.DEFAULT_ROOTFS and fl.rootfs_path().name.startswith("rootfs-bookworm-v")
    assert fl.rootfs_path("bullseye") == fl.DEFAULT_ROOTFS.parent / f"rootfs-bullseye-v{fl.ROOTFS_VERSION}"
    assert fl._suite_of(fl.rootfs_path("bullseye")) == "bullseye"
    monkeypatch.setenv("PP_ROOTFS_CACHE", str(tmp_path / "mine"))
    assert fl.rootfs_path() == tmp_path / "mine" and fl.rootfs_path("bullseye").parent == tmp_path
    monkeypatch.delenv("PP_ROOTFS_CACHE")
    monkeypatch.setenv("PP_ROOTFS_SUITE", "bullseye")
    assert fl.rootfs_path().name.startswith("rootfs-bullseye-v")
    mixed = Fleet(2, tmp_path / "f", suites=["bullseye", None], suite="bookworm")
    assert mixed.suites == ["bullseye", "bookworm"] and mixed.rootfs == fl.rootfs_path("bookworm")
    with pytest.raises(ValueError):
        Fleet(2, tmp_path / "g", suites=["bullseye"])
