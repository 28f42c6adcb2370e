"""Module conventions as users meet them: the module's own EXAMPLES under --check, module_defaults for the
collection's action group, and the old gateway_status name (a redirect to gateway_info)."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _ansible_playbook(env, playbook: Path, *extra):
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)]
    proc = subprocess.run([*cmd, *extra], env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _examples(module_file: Path):
    source = module_file.read_text()
    start = source.index('EXAMPLES = r"""') + len('EXAMPLES = r"""')
    return yaml.safe_load(source[start : source.index('"""', start)])


def test_ztp_examples_work_under_check(ansible_env, tmp_path):
    """Every task of the ztp module's EXAMPLES runs under --check on a fresh host (no API call in check mode)."""
    facts = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-m", "setup", "-a", "gather_subset=!all,network"],
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    if '"macaddress"' not in facts.split('"ansible_default_ipv4"', 1)[-1][:600]:
        pytest.skip("this machine has no default IPv4 interface, which the second example reads")
    dest = tmp_path / "pp"
    results = tmp_path / "results.json"
    tasks = _examples(REPO / "plugins" / "modules" / "ztp.py")
    assert len(tasks) >= 5
    names = [task.get("register", f"example_{i}") for i, task in enumerate(tasks)]
    play = {
        "name": "The ztp module's EXAMPLES",
        "hosts": "all",
        "gather_facts": True,
        "gather_subset": ["!all", "network"],
        "vars": {"vault_pointperfect_token": str(uuid.uuid4()), "ansible_python_interpreter": sys.executable},
        # the examples use the default dest /etc/pointperfect; the collection's action group moves it here
        "module_defaults": {"group/gnss.pointperfect.pointperfect": {"dest": str(dest)}},
        "tasks": [dict(task, register=name) for task, name in zip(tasks, names, strict=True)]
        + [
            {
                "name": "Save the results",
                "ansible.builtin.copy": {
                    "content": "{{ [" + ", ".join(names) + "] | to_json }}",
                    "dest": str(results),
                    "mode": "0600",
                },
                "check_mode": False,
            }
        ],
    }
    playbook = tmp_path / "examples.yml"
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    rc, out = _ansible_playbook(ansible_env, playbook, "--check")
    assert rc == 0, out[-4000:]
    assert not dest.exists()
    done = json.loads(results.read_text())
    provisioned = [r for r in done if "api_called" in r]
    assert len(provisioned) == len(tasks) - 1  # all but the debug task
    for r in provisioned:
        assert (r["api_called"], r["reason"], r.get("failed", False)) == (False, "missing", False), r
        assert r["files"] == [str(dest / n) for n in ("client.crt", "client.key", "credentials.json")]
    shown = next(r for r in done if "api_called" not in r)  # the debug task: plan, service, days_remaining defined
    assert not shown.get("failed") and " via " in shown["msg"] and "more days" in shown["msg"], shown


def test_module_defaults_group_and_old_name(ansible_env, tmp_path):
    """module_defaults: group/gnss.pointperfect.pointperfect reaches ztp, gateway_info and gateway_status."""
    dest = tmp_path / "etc"
    results = tmp_path / "results.json"
    play = {
        "name": "Action group",
        "hosts": "all",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "module_defaults": {"group/gnss.pointperfect.pointperfect": {"dest": str(dest)}},
        "tasks": [
            {"name": "ztp", "gnss.pointperfect.ztp": {"hardware_id": "gw-01"}, "register": "a", "check_mode": True},
            {"name": "gateway_info", "gnss.pointperfect.gateway_info": {}, "register": "b"},
            {"name": "old name", "gnss.pointperfect.gateway_status": {}, "register": "c"},
            {
                "name": "Save",
                "ansible.builtin.copy": {"content": "{{ [a, b, c] | to_json }}", "dest": str(results), "mode": "0600"},
            },
        ],
    }
    playbook = tmp_path / "group.yml"
    playbook.write_text(yaml.safe_dump([play], sort_keys=False))
    rc, out = _ansible_playbook(ansible_env, playbook)
    assert rc == 0, out[-4000:]
    ztp, info, old = json.loads(results.read_text())
    assert ztp["files"][0] == str(dest / "client.crt")
    assert info["gateway"]["credentials"]["path"] == str(dest / "credentials.json")
    assert old["gateway"]["credentials"]["path"] == str(dest / "credentials.json")
    assert "gateway_status" not in out or "deprecat" not in out.lower()
