"""gateway_account on real gateways (Debian 11 and 12 in nspawn): the module makes in ONE round trip what the role's
four builtin tasks (group x2, user, file) made in four, with the same result; check mode on a fresh gateway changes
nothing and reports the change; a re-run changes nothing; a user's other groups are kept. The tests run in file
order on one fleet. With file output the module also makes the output file's directory (0770 root:<group>, missing
parents 0750) and leaves an existing one as it is; gateway_probe's as_wanted agrees before and after. Last, the whole
provision playbook with file output on the Debian 12 gateway (the lab's simulator and broker): the forwarder runs and
writes its file (a missing ReadWritePaths= directory made systemd fail at NAMESPACE), and a re-run changes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from pointperfect_sim import frames as F
from pointperfect_sim.fleet import Fleet

from .conftest import MQTT_TOKEN, RECAP

pytestmark = [pytest.mark.fleet, pytest.mark.slow]

SUITES = ["bullseye", "bookworm"]
PORT = re.compile(r"Port=(\d+)")  # how ansible's ssh connection names a gateway (all are 127.0.0.1)
_VENV = Path(sys.executable).parent
ANSIBLE_PLAYBOOK = str(_VENV / "ansible-playbook") if (_VENV / "ansible-playbook").exists() else "ansible-playbook"
# The account as the role wants it, per variant: b = the four builtin tasks (the role before gateway_account),
# m = the module; serial groups that Debian does not have, so that their creation is exercised too.
ACCOUNT = {
    v: {"user": f"pp{v}", "group": f"pp{v}", "serial_group": f"gnss-serial-{v}", "home": f"/opt/pp{v}",
        "shell": "/usr/sbin/nologin", "config_dir": f"/etc/pp{v}/conf"}
    for v in "bm"
}  # fmt: skip
BUILTIN_TASKS = """
    - ansible.builtin.group: {name: "{{ a.serial_group }}", system: true, state: present}
      register: r1
    - ansible.builtin.group: {name: "{{ a.group }}", system: true, state: present}
      register: r2
    - ansible.builtin.user:
        name: "{{ a.user }}"
        group: "{{ a.group }}"
        groups: ["{{ a.serial_group }}"]
        append: true
        system: true
        shell: /usr/sbin/nologin
        home: "{{ a.home }}"
        create_home: false
        comment: PointPerfect correction forwarder
        state: present
      register: r3
    - ansible.builtin.file: {path: "{{ a.config_dir }}", state: directory, owner: root, group: "{{ a.group }}",
                             mode: "0750"}
      register: r4
"""
MODULE_TASK = """
    - gnss.pointperfect.gateway_account:
        user: "{{ a.user }}"
        group: "{{ a.group }}"
        serial_group: "{{ a.serial_group }}"
        home: "{{ a.home }}"
        shell: "{{ a.shell }}"
        config_dir: "{{ a.config_dir }}"
      register: r1
"""
# MODULE_TASK with file output
MODULE_TASK_OUTPUT = MODULE_TASK.replace(
    "\n      register: r1", '\n        output_dir: "{{ a.output_dir }}"\n      register: r1'
)
# The probe's compare, the module, the probe again: for the output directory (file output).
OUTPUT_TASKS = """
    - gnss.pointperfect.gateway_probe:
        account: &account {user: "{{ a.user }}", group: "{{ a.group }}", serial_group: "{{ a.serial_group }}",
                           home: "{{ a.home }}", shell: "{{ a.shell }}", output_dir: "{{ a.output_dir }}"}
      register: r1
    - gnss.pointperfect.gateway_account:
        <<: *account
        config_dir: "{{ a.config_dir }}"
      register: r2
    - gnss.pointperfect.gateway_probe:
        account: *account
      register: r3
"""
# Hands the registered results to the test: on the controller (a local connection, no round trip to the gateway).
REPORT_TASK = """
    - ansible.builtin.copy:
        content: "{{ [r1, r2 | default(none), r3 | default(none), r4 | default(none)] | select | list | to_json }}"
        dest: "{{ out }}/{{ inventory_hostname }}.json"
        mode: "0644"
      delegate_to: localhost
      check_mode: false
"""


@pytest.fixture(scope="module")
def account_fleet(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the gateway_account fleet test needs root (systemd-nspawn)")
    with Fleet(len(SUITES), tmp_path_factory.mktemp("account") / "fleet", prefix="ga", suites=SUITES) as f:
        yield f


@pytest.fixture(scope="module")
def play(account_fleet, ansible_env, tmp_path_factory):
    """play(tasks, account, *args) -> ({host: [task results]}, {host: ssh invocations}): one playbook run on every
    gateway through an ssh shim that counts the round trips (as bench/fleet and the e2e no-op test count them)."""
    fleet = account_fleet
    work = tmp_path_factory.mktemp("play")
    bindir, log = work / "bin", work / "ssh.log"
    bindir.mkdir()
    shim = bindir / "ssh"
    shim.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >> {log}\nexec {shutil.which("ssh")} "$@"\n')
    shim.chmod(0o755)
    port_host = {str(gw.ssh_port): gw.name for gw in account_fleet.gateways}
    env = dict(fleet.ansible_env(ansible_env), PATH=f"{bindir}:{ansible_env['PATH']}")
    env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(work / "cp")

    def run(tasks: str, account: dict, *args: str):
        book = work / "play.yml"
        play_vars = json.dumps({"a": account, "out": str(work)})
        book.write_text(f"- hosts: all\n  gather_facts: false\n  vars: {play_vars}\n  tasks:{tasks}{REPORT_TASK}")
        log.write_text("")
        for stale in work.glob("*.json"):
            stale.unlink()
        proc = subprocess.run([ANSIBLE_PLAYBOOK, str(book), *args], env=env, capture_output=True, text=True,
                              timeout=300, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        results = {gw.name: json.loads((work / f"{gw.name}.json").read_text()) for gw in fleet.gateways}
        trips = Counter(port_host[m.group(1)] for ln in log.read_text().splitlines() if (m := PORT.search(ln)))
        return results, dict(trips)

    return run


def facts(gw, a: dict) -> dict:
    """The account and the config directory as the gateway's own tools show them (names, not ids)."""
    out = gw.run(
        f"getent passwd {a['user']} | cut -d: -f5-7; id -gn {a['user']}; id -Gn {a['user']};"
        f" getent group {a['group']} {a['serial_group']} | cut -d: -f3; stat -c '%F %a %U %G' {a['config_dir']}"
        f" {Path(a['config_dir']).parent}"
    ).stdout.splitlines()
    passwd, primary, groups, gid, serial_gid, conf, parent = out
    system = all(int(g) < 1000 for g in (gid, serial_gid, gw.run(f"id -u {a['user']}").stdout))
    return {"passwd": passwd, "primary": primary, "groups": sorted(groups.split()), "system": system,
            "config_dir": conf, "parent": parent}  # fmt: skip


def absent(gw, a: dict) -> bool:
    return gw.run(f"getent passwd {a['user']} || getent group {a['group']} || test -e {a['config_dir']}",
                  check=False).returncode != 0  # fmt: skip


def test_check_mode_on_a_fresh_gateway_changes_nothing_and_reports_the_change(account_fleet, play):
    results, trips = play(MODULE_TASK, ACCOUNT["m"], "--check")
    for gw in account_fleet.gateways:
        got = results[gw.name][0]
        assert got["changed"] is True and got["created"] == ["serial_group", "group", "user", "config_dir"], got
        assert absent(gw, ACCOUNT["m"]), gw.name
    assert trips == {gw.name: 1 for gw in account_fleet.gateways}


def test_one_round_trip_makes_what_four_builtin_tasks_made(account_fleet, play):
    builtin, builtin_trips = play(BUILTIN_TASKS, ACCOUNT["b"])
    ours, trips = play(MODULE_TASK, ACCOUNT["m"])
    assert builtin_trips == {gw.name: 4 for gw in account_fleet.gateways}
    assert trips == {gw.name: 1 for gw in account_fleet.gateways}
    for gw in account_fleet.gateways:
        assert [r["changed"] for r in builtin[gw.name]] == [True] * 4
        got = ours[gw.name][0]
        assert got["changed"] is True and got["created"] == ["serial_group", "group", "user", "config_dir"], got
        assert got["account"]["as_wanted"] is True
        want = facts(gw, ACCOUNT["b"])
        assert want == {"passwd": "PointPerfect correction forwarder:/opt/ppb:/usr/sbin/nologin", "primary": "ppb",
                        "groups": ["gnss-serial-b", "ppb"], "system": True, "config_dir": "directory 750 root ppb",
                        "parent": "directory 750 root ppb"}, gw.name  # fmt: skip
        assert json.dumps(facts(gw, ACCOUNT["m"])) == json.dumps(want).replace("ppb", "ppm").replace("-b", "-m")
        assert gw.run("test -e /opt/ppm", check=False).returncode != 0  # no home created


def test_a_rerun_changes_nothing_in_one_round_trip(account_fleet, play):
    results, trips = play(MODULE_TASK, ACCOUNT["m"], "--diff")
    for gw in account_fleet.gateways:
        got = results[gw.name][0]
        assert got["changed"] is False and got["commands"] == [], got
        assert got["diff"]["before"] == got["diff"]["after"]
    assert trips == {gw.name: 1 for gw in account_fleet.gateways}


def test_an_existing_user_keeps_its_other_groups(account_fleet, play):
    a = dict(ACCOUNT["m"], user="ppx")
    for gw in account_fleet.gateways:
        gw.run("useradd --system --groups video,plugdev --shell /bin/sh --home-dir /srv/ppx --no-create-home ppx")
    results, _ = play(MODULE_TASK, a)
    for gw in account_fleet.gateways:
        got = results[gw.name][0]
        assert got["changed"] is True and got["created"] == [] and got["modified"] == ["user"], got
        assert facts(gw, a)["groups"] == ["gnss-serial-m", "plugdev", "ppm", "video"]
        assert facts(gw, a)["passwd"] == "PointPerfect correction forwarder:/opt/ppm:/usr/sbin/nologin"


def test_output_dir_is_made_0770_for_the_service_and_then_left_alone(account_fleet, play):
    a = dict(ACCOUNT["m"], output_dir="/srv/ppm-gnss/out")  # /srv exists, /srv/ppm-gnss does not
    results, _ = play(OUTPUT_TASKS, a, "--check")
    for gw in account_fleet.gateways:
        before, got, _after = results[gw.name]
        assert before["account"]["as_wanted"] is False and before["account"]["output_dir"] is None, before
        assert got["changed"] is True and got["created"] == ["output_dir"], got
        assert gw.run("test -e /srv/ppm-gnss", check=False).returncode != 0, gw.name
    results, _ = play(OUTPUT_TASKS, a, "--diff")
    for gw in account_fleet.gateways:
        before, got, after = results[gw.name]
        assert before["account"]["as_wanted"] is False and got["created"] == ["output_dir"], got
        assert got["commands"] == [] and got["account"]["as_wanted"] is True
        assert after["account"]["as_wanted"] is True
        wanted = {"type": "directory", "mode": "0770", "owner": "root", "group": "ppm"}
        assert got["account"]["output_dir"] == after["account"]["output_dir"] == wanted
        assert sh_lines(gw, "stat -c '%F %a %U %G' /srv/ppm-gnss/out /srv/ppm-gnss") == [
            "directory 770 root ppm",
            "directory 750 root ppm",
        ], gw.name
        # the service user creates and writes its file there (as the forwarder does)
        gw.run("setpriv --reuid ppm --regid ppm --init-groups sh -c 'echo x > /srv/ppm-gnss/out/c.spartn'")
    results, trips = play(MODULE_TASK_OUTPUT, a)
    for gw in account_fleet.gateways:
        got = results[gw.name][0]
        assert got["changed"] is False and got["created"] == got["modified"] == got["commands"] == [], got
    assert trips == {gw.name: 1 for gw in account_fleet.gateways}


def test_an_existing_output_dir_is_left_as_it_is_and_a_file_is_an_error(account_fleet, play):
    a = dict(ACCOUNT["m"], output_dir="/srv/ppm-shared")
    for gw in account_fleet.gateways:
        gw.run("install -d -m 0755 -o root -g root /srv/ppm-shared && touch /srv/ppm-file")
    results, _ = play(OUTPUT_TASKS, a)
    for gw in account_fleet.gateways:
        before, got, _after = results[gw.name]
        assert before["account"]["as_wanted"] is True and got["changed"] is False, got
        assert sh_lines(gw, "stat -c '%F %a %U %G' /srv/ppm-shared") == ["directory 755 root root"], gw.name
    with pytest.raises(AssertionError, match=r"/srv/ppm-file is a file, not a directory; remove it or set another"):
        play(OUTPUT_TASKS, dict(a, output_dir="/srv/ppm-file"))


def sh_lines(gw, command: str) -> list[str]:
    return gw.run(command).stdout.splitlines()


@pytest.mark.lab
def test_the_role_with_file_output_runs_the_forwarder_writing_its_file(account_fleet, lab, ansible_env, tmp_path):
    gw = next(g for g in account_fleet.gateways if g.suite == "bookworm")  # Debian 11's Python is too old for it
    out = "/var/lib/pointperfect/corrections.spartn"
    inv = tmp_path / "inventory"
    (inv / "group_vars").mkdir(parents=True)
    shutil.copy(account_fleet.inventory_path, inv / "hosts.ini")
    (inv / "group_vars" / "pointperfect_gateways.yml").write_text(
        f"pointperfect_ztp_api_url: {lab.sim.url}\npointperfect_ztp_ca_path: {lab.sim.ca_path}\n"
        f"pointperfect_ca_file: {lab.pki.ca_path}\npointperfect_mqtt_port: {lab.broker.port}\n"
        f"pointperfect_region: eu\npointperfect_output_type: file\npointperfect_output_path: {out}\n"
    )
    env = dict(account_fleet.ansible_env(ansible_env), POINTPERFECT_ZTP_TOKEN=MQTT_TOKEN)

    def provision():
        argv = [ANSIBLE_PLAYBOOK, "gnss.pointperfect.provision", "-i", str(inv), "--limit", gw.name]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        return {m.group(1): int(m.group(3)) for m in RECAP.finditer(proc.stdout)}

    assert gw.run("test -e /var/lib/pointperfect", check=False).returncode != 0
    assert provision()[gw.name] > 0
    assert sh_lines(gw, "systemctl is-active pointperfect-forwarder") == ["active"]
    assert sh_lines(gw, "stat -c '%F %a %U %G' /var/lib/pointperfect") == ["directory 770 root pointperfect"]
    topic = json.loads(gw.run("cat /etc/pointperfect/credentials.json").stdout)["topics"]["corrections"]["eu"]
    frames = F.synthetic_spartn(5)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for frame in frames:
            lab.replayer.publish(topic, frame)
        written = gw.run(f"cat {out}", text=False, check=False).stdout
        if all(frame in written for frame in frames):
            break
        time.sleep(1)
    assert all(frame in written for frame in frames), f"{len(written)} bytes in {out}"
    assert provision() == {gw.name: 0}  # as_wanted with the directory in place: nothing to do
