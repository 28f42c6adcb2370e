"""The gateway role's controller side (issue 14, items 1 and 3), run for real with ansible-playbook on localhost:
the forwarder build step on every supported controller Python (3.10 has no tomllib), a controller Python without pip
named in one line, and every message the role builds rendered on one line (ansible-core 2.19 keeps newlines that older
versions folded)."""

from __future__ import annotations

import base64
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib

from tests.role_play import PLAYBOOK_BIN, failed_checks, render_templates, run_role_tasks

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "roles" / "gateway" / "files" / "forwarder_build.py"
PY310 = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10.*/bin/python")))
UNIT = "/etc/systemd/system/pointperfect-forwarder.service"
FATAL = re.compile(r"^fatal: \[localhost\]: FAILED! => (\{.*\})$", re.M)


@pytest.fixture(scope="module")
def py310() -> str:
    if not PY310:
        pytest.skip("no Python 3.10 under ~/.pyenv/versions/3.10.* (pyenv install 3.10) for the controller test")
    return PY310[-1]


@pytest.fixture(scope="module")
def no_pip_python(tmp_path_factory) -> str:
    """A venv of this Python created without pip: a controller Python that cannot run `pip wheel`."""
    where = tmp_path_factory.mktemp("nopip") / "venv"
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    assert subprocess.run([python, "-c", "import pip"], capture_output=True, check=False).returncode != 0
    return str(python)


def load_builder():
    spec = importlib.util.spec_from_file_location("forwarder_build_under_test", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_install_step(ansible_env, tmp_path: Path, controller_python: str, cache: Path) -> tuple[int, str]:
    """The role's install tasks (the controller build step, the batch's checks, then the install converge.yml runs)
    in check mode on localhost, as a gateway whose probe found no build marker and no unit."""
    play = tmp_path / "install.yml"
    play.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.include_role:\n"
        "        name: gnss.pointperfect.gateway\n"
        "        tasks_from: install\n"
        "    - ansible.builtin.include_role:\n"
        "        name: gnss.pointperfect.gateway\n"
        "        tasks_from: checks\n"
        "    - ansible.builtin.include_role:\n"
        "        name: gnss.pointperfect.gateway\n"
        "        tasks_from: install_build\n"
    )
    extra = tmp_path / "vars.json"
    extra.write_text(
        json.dumps(
            {
                "pointperfect_controller_python": controller_python,
                "pointperfect_wheelhouse_cache_dir": str(cache),
                "__pointperfect_probe": {"build_marker": None, "unit": {"path": UNIT, "exists": False}},
                "ansible_python_interpreter": sys.executable,
            }
        )
    )
    argv = [PLAYBOOK_BIN, "-i", "localhost,", "-c", "local", "--check", "-e", f"@{extra}", str(play)]
    proc = subprocess.run(argv, env=ansible_env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def fatal_message(out: str) -> str:
    found = FATAL.search(out)
    assert found, out[-3000:]
    return json.loads(found.group(1))["msg"]


# ---------------------------------------------------------------- item 1: controller Python 3.10, pip


@pytest.mark.parametrize("project", ["forwarder", "simulator"])
def test_pyproject_fields_without_tomllib_match_tomllib(project):
    text = (REPO / project / "pyproject.toml").read_text()
    want = tomllib.loads(text)["project"]
    got = load_builder().project_table(text)
    assert got.get("name") == want["name"]
    assert got.get("version") == want.get("version")


def test_pyproject_reader_keeps_to_the_project_table():
    text = (
        '[build-system]\nrequires = ["setuptools>=61"]\nname = "not-this"\n'
        "[project]\n"
        'name = "pp-forwarder"  # the distribution\n'
        "version = '1.2.3'\n"
        'dependencies = [\n  "a==1",\n]\n'
        '[tool.x]\nversion = "9"\n'
    )
    assert load_builder().project_table(text) == {"name": "pp-forwarder", "version": "1.2.3"}


def test_zipapp_builds_with_python_310(py310, tmp_path):
    """forwarder_build.py run by Python 3.10 builds the zipapp (pip wheel from the index or its mirror) and reports
    the same build id as the Python that runs the tests; the zipapp runs, and its .b64 is the zipapp."""
    cache, src = tmp_path / "cache", tmp_path / "forwarder"  # a snapshot: the source may change during the test
    shutil.copytree(REPO / "forwarder", src, ignore=shutil.ignore_patterns(*load_builder().SKIP_DIRS, "*.egg-info"))
    argv = [str(BUILDER), "--src", str(src), "--cache-dir", str(cache)]
    proc = subprocess.run([py310, *argv], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["built"] is True and report["exists"] is True, report
    assert report["name"] == "pointperfect-forwarder"
    pyz = Path(report["pyz"])
    assert pyz.name == f"pointperfect-forwarder-{report['build_id']}.pyz" and pyz.parent == cache
    assert base64.b64decode(Path(report["b64"]).read_bytes()) == pyz.read_bytes()
    with zipfile.ZipFile(pyz) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {"__main__.py", "pointperfect_forwarder", "paho", "serial", "pyubx2", "prometheus_client"} <= tops, tops
    assert "bin" not in tops and not any(t.startswith("pip") for t in tops), tops
    ran = subprocess.run([py310, str(pyz), "--version"], capture_output=True, text=True, check=False)
    assert ran.returncode == 0 and ran.stdout.startswith("pointperfect-forwarder "), ran.stdout + ran.stderr
    again = subprocess.run([sys.executable, *argv, "--no-build"], capture_output=True, text=True, check=True)
    assert json.loads(again.stdout)["build_id"] == report["build_id"]


def test_role_build_step_with_python_310(py310, ansible_env, tmp_path):
    """The role's controller step with pointperfect_controller_python = Python 3.10 (check mode: it only reports)."""
    rc, out = run_install_step(ansible_env, tmp_path, py310, tmp_path / "cache")
    assert rc == 0, out[-4000:]
    assert "would install pointperfect-forwarder 0.1.0-" in out, out[-4000:]


def test_build_without_pip_says_so_in_one_line(no_pip_python, tmp_path):
    argv = [BUILDER, "--src", REPO / "forwarder", "--cache-dir", tmp_path / "cache"]
    proc = subprocess.run([no_pip_python, *map(str, argv)], capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"the controller Python {no_pip_python} " in lines[0] and "has no pip" in lines[0]
    assert "install python3-pip" in lines[0] and "pointperfect_controller_python" in lines[0]


def test_role_names_a_controller_python_without_pip(no_pip_python, ansible_env, tmp_path):
    rc, out = run_install_step(ansible_env, tmp_path, no_pip_python, tmp_path / "cache")
    assert rc != 0
    msg = fatal_message(out)
    assert "\n" not in msg and "  " not in msg, msg
    assert msg.startswith("the forwarder build failed on the controller"), msg
    assert "has no pip" in msg and "pointperfect_controller_python" in msg, msg
    assert "from_json failed" not in out and "Expecting value" not in out, out[-3000:]


def test_role_names_a_missing_controller_python(ansible_env, tmp_path):
    rc, out = run_install_step(ansible_env, tmp_path, str(tmp_path / "no-such-python"), tmp_path / "cache")
    assert rc != 0
    msg = fatal_message(out)
    assert "\n" not in msg and "cannot run pointperfect_controller_python" in msg, msg
    assert "no-such-python (no such file); set it to a Python 3.10+ with pip" in msg, msg
    assert "from_json failed" not in out and "Expecting value" not in out, out[-3000:]


# ---------------------------------------------------------------- item 3: every role message on one line

# Each scenario sets bad values (task vars) so that the role's message lists fill up; the counts are how many
# messages each list must hold, so a check added later without a scenario shows up here.
SCENARIOS = {
    "install_enospc": (
        "__pointperfect_install_failure",
        {"__pointperfect_install_run": {"rc": 1, "stderr": "OSError: [Errno 28]\n   No space left on device\n"}},
        1,
    ),
    "install_erofs": (
        "__pointperfect_install_failure",
        {"__pointperfect_install_run": {"rc": 1, "stderr": "OSError: [Errno 30] Read-only file system: '/opt'\n"}},
        1,
    ),
    "install_bad_archive": (
        "__pointperfect_install_failure",
        {"__pointperfect_install_run": {"rc": 1, "stderr": "warning\nFile is not  a zip file\n"}},
        1,
    ),
    "install_last_line": (
        "__pointperfect_install_failure",
        {"__pointperfect_install_run": {"rc": 2, "stdout": "", "stderr": "tar: x: Cannot open\n  tar:   giving up\n"}},
        1,
    ),
    "build_no_pip": (
        "__pointperfect_build_failure",
        {"__pointperfect_build_run": {"rc": 1, "stdout": "", "stderr": "warn\nPython  no pip\n"}},
        1,
    ),
    "build_no_python": (
        "__pointperfect_build_failure",
        {"__pointperfect_build_run": {"rc": 127, "stdout": "", "stderr": "sh: 1: /x: not found\n"}},
        1,
    ),
    # a multi-region plan without a position: the input's own last_error is none, the forwarder's says why
    "health_gate_region": (
        "__pointperfect_health_failure",
        {
            "__pointperfect_health": {
                "gateway": {
                    "service": {"state": "active", "main_pid": 7},
                    "status": {
                        "state": "ok",
                        "data": {
                            "pid": 7,
                            "last_error": "waiting for a position fix",
                            "input": {"state": "starting", "last_error": None},
                        },
                    },
                }
            }
        },
        1,
    ),
    # systemd refused the restart (the handler's result, failed_when: false): its two-line message in one line
    "restart_refused": (
        "__pointperfect_start_failure",
        {
            "__pointperfect_restart": {
                "changed": False,
                "failed_when_result": False,
                "msg": "Unable to restart service pointperfect-forwarder: Job for pointperfect-forwarder.service "
                'failed because the control process exited with error code.\nSee "systemctl status '
                'pointperfect-forwarder.service" and "journalctl -xeu pointperfect-forwarder.service" for '
                "details.\n",
            },
            "__pointperfect_start": {"changed": False, "skipped": True},
        },
        1,
    ),
    "health_gate": (
        "__pointperfect_health_failure",
        {
            "__pointperfect_health": {
                "gateway": {
                    "service": {"state": "active", "main_pid": 7},
                    "status": {
                        "state": "ok",
                        "data": {"pid": 7, "input": {"state": "backoff", "last_error": "refused\n  (port 1)"}},
                    },
                }
            }
        },
        1,
    ),
}


# The role's checks (asserts), per tasks file: bad values for each concern, and how many asserts must fail (one per
# concern, so a check added later without a scenario shows up here).
CHECK_SCENARIOS = {
    # the defaults with a well-formed token pass every check (a check whose message is none would fail here)
    "valid": ("validate.yml", {"pointperfect_ztp_token": "3c1a7f52-6b0e-4c2d-9f41-7a5e00000a01"}, 0),
    "errors": (
        "validate.yml",
        {
            "pointperfect_ztp_throttle": -1,
            "pointperfect_ntrip_gga_interval": 0,
            "pointperfect_fixed_position": {"lat": 100, "lon": 0},
            "pointperfect_ntrip_tls": False,
            "pointperfect_lband_baudrate": 0,
            "pointperfect_output_queue_bytes": 0,
            "pointperfect_metrics_port": 70000,
            "pointperfect_ztp_token": " 3C1A7F52-6B0E-4C2D-9F41-7A5E00000A01",
        },
        8,
    ),
    "source_lband_on_ip_plan_over_ntrip": (
        "source.yml",
        {"pointperfect_correction_source": "lband", "__pointperfect_ztp": {"plan": "ip", "service": "ntrip"}},
        2,
    ),
    "source_ip_on_lband_plan_with_d9s": (
        "source.yml",
        {
            "pointperfect_correction_source": "ip",
            "pointperfect_lband_device": "/dev/ttyACM1",
            "__pointperfect_ztp": {"plan": "lband", "service": "mqtt"},
        },
        2,
    ),
}


def test_every_role_check_fails_with_one_line(ansible_env, collections_path, tmp_path):
    """Runs each checks file of the role with ansible-playbook (the real templating of the installed ansible-core):
    each failing assert gives one message of one line, without doubled or surrounding spaces, and the token is
    never in it."""
    variables = {"pointperfect_state": "present", "__pointperfect_probe": {"app_specific_id": "0123"}}
    found = {}
    for tasks_file in sorted({f for f, _bad, _count in CHECK_SCENARIOS.values()}):
        cases = {name: bad for name, (f, bad, _count) in CHECK_SCENARIOS.items() if f == tasks_file}
        found.update(failed_checks(ansible_env, collections_path, tmp_path, tasks_file, cases, variables=variables))
    for name, (_file, _bad, count) in CHECK_SCENARIOS.items():
        messages = found[name]
        assert len(messages) == count, (name, messages)
        for msg in messages:
            assert isinstance(msg, str) and msg, (name, msg)
            assert "\n" not in msg and "  " not in msg and msg == msg.strip(), (name, msg)
            assert "3c1a7f52" not in msg.lower(), (name, msg)


def test_every_role_message_is_one_line(ansible_env, collections_path, tmp_path):
    """Renders each message list of vars/main.yml with ansible-playbook (the real templating of the installed
    ansible-core) and checks every message is one line, without doubled or surrounding spaces."""
    tasks = []
    for name, (variable, bad, _count) in SCENARIOS.items():
        tasks.append(
            {
                "name": name,
                "ansible.builtin.set_fact": {f"out_{name}": f"{{{{ {variable} }}}}"},
                "vars": bad,
            }
        )
    results = tmp_path / "messages.json"
    tasks.append(
        {
            "name": "write",
            "ansible.builtin.copy": {
                "content": "{{ {" + ", ".join(f"'{n}': out_{n}" for n in SCENARIOS) + "} | to_json }}",
                "dest": str(results),
                "mode": "0600",
            },
        }
    )
    variables = {"pointperfect_state": "present"}
    run_role_tasks(ansible_env, collections_path, tmp_path, tasks, variables)
    rendered = json.loads(results.read_text())
    for name, (_variable, _bad, count) in SCENARIOS.items():
        value = rendered[name]
        messages = value if isinstance(value, list) else [value]
        assert len(messages) == count, (name, messages)
        for msg in messages:
            assert isinstance(msg, str) and msg, (name, msg)
            assert "\n" not in msg and "  " not in msg and msg == msg.strip(), (name, msg)
    assert rendered["restart_refused"].startswith("localhost: the forwarder did not start: Unable to restart service")
    assert rendered["restart_refused"].endswith(
        "for details. (journalctl -u pointperfect-forwarder on the gateway shows why)"
    ), rendered["restart_refused"]
    assert rendered["health_gate"].startswith("localhost: the forwarder did not report its input connected")
    assert "input backoff: refused (port 1)" in rendered["health_gate"]
    assert "input starting: waiting for a position fix);" in rendered["health_gate_region"]
    assert rendered["install_enospc"].startswith("localhost: the forwarder install failed: the disk is full (ENOSPC)")
    assert rendered["install_bad_archive"] == "localhost: the forwarder install failed: File is not a zip file"


# ---------------------------------------------------------------- item 6: tags


def test_provision_lists_the_role_tags(ansible_env, tmp_path):
    """node_exporter-style tags: `--list-tags` shows ztp, install, configure, service (and always: validation)."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[pointperfect_gateways]\ngw-01 ansible_connection=local\n")
    argv = [PLAYBOOK_BIN, "-i", str(inventory), "gnss.pointperfect.provision", "--list-tags"]
    proc = subprocess.run(argv, env=ansible_env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.search(r"TASK TAGS: \[([^\]]*)\]", proc.stdout)
    assert found, proc.stdout
    assert sorted(t.strip() for t in found.group(1).split(",")) == ["always", "configure", "install", "service", "ztp"]


# ---------------------------------------------------------------- forwarder.json: metrics port 0


def test_metrics_port_zero_disables_the_endpoint(ansible_env, collections_path, tmp_path):
    """The role documents pointperfect_metrics_port 0 as "disables it": forwarder.json then has metrics_port null
    (the forwarder refuses 0, which would bind a random port)."""
    cases = {f"port{port}": {"pointperfect_metrics_port": port} for port in (0, 9661)}
    variables = {"__pointperfect_ztp": {"service": "mqtt", "plan": "ip"}}
    out = render_templates(ansible_env, collections_path, tmp_path, "forwarder.json.j2", cases, variables=variables)
    assert json.loads(out["port0"].read_text())["health"]["metrics_port"] is None
    assert json.loads(out["port9661"].read_text())["health"]["metrics_port"] == 9661
