"""The role's check that the hardware ids derived so far are unique across the play (checks.yml: cloned images
share machine ids), run as it is with ansible-playbook: several local hosts with probe results, hosts not probed
(a later batch) or whose probe failed are ignored, a duplicate fails with one message naming each host's id."""

from __future__ import annotations

import json
import re
import subprocess

import yaml

from tests.role_play import PLAYBOOK_BIN, role_dir

TASK = "Stop the batch when the forwarder build failed or gateways share a hardware id"


def run_check(ansible_env, collections_path, tmp_path, probes: dict) -> subprocess.CompletedProcess:
    """One play over the hosts of `probes` (host -> registered probe result, None = never probed): the probe result
    set as the role registers it, then the role's own task."""
    tasks = yaml.safe_load((role_dir(collections_path) / "tasks" / "checks.yml").read_text())
    check = next(t for t in tasks if t["name"] == TASK)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("".join(f"{h} ansible_connection=local\n" for h in probes))
    probed = {
        "name": "probed",
        "ansible.builtin.set_fact": {"__pointperfect_probe": "{{ probes[inventory_hostname] }}"},
        "when": "probes[inventory_hostname] is not none",
    }
    play = [{"hosts": "all", "gather_facts": False, "tasks": [probed, check], "vars": {"probes": probes}}]
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps(play))
    argv = [PLAYBOOK_BIN, "-i", str(inventory), str(playbook)]
    return subprocess.run(argv, env=ansible_env, capture_output=True, text=True, check=False)


def test_unique_ids_pass_and_unprobed_hosts_are_ignored(ansible_env, collections_path, tmp_path):
    probes = {"gw-a": {"hardware_id": "pp-1"}, "gw-b": {"hardware_id": "pp-2"},
              "gw-c": {"failed": True, "msg": "probe failed"}, "gw-d": None, "gw-e": None}  # fmt: skip
    proc = run_check(ansible_env, collections_path, tmp_path, probes)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "ok=" in proc.stdout


def test_a_shared_id_fails_naming_each_hosts_id(ansible_env, collections_path, tmp_path):
    probes = {"gw-a": {"hardware_id": "pp-1"}, "gw-b": {"hardware_id": "pp-2"}, "gw-c": {"hardware_id": "pp-1"},
              "gw-d": None}  # fmt: skip
    proc = run_check(ansible_env, collections_path, tmp_path, probes)
    assert proc.returncode != 0
    failed = re.search(r"^fatal: \[gw-a\]: FAILED! => (\{.*\})$", proc.stdout, re.M)
    assert failed, proc.stdout[-3000:]
    msg = json.loads(failed.group(1))["msg"]
    assert msg.startswith("Several gateways have the same hardware id") and "\n" not in msg
    assert "{'gw-a': 'pp-1', 'gw-b': 'pp-2', 'gw-c': 'pp-1'}" in msg, msg
