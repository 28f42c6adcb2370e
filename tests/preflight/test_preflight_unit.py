"""The preflight checks of the role's probe (plugins/module_utils/_preflight.py) without a gateway: the facts it
gathers from this host, and the one-line problem (cause and fix) each failing concern gives."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugins.module_utils import _preflight as pf

REPO = Path(__file__).resolve().parents[2]


def messages(facts):
    return [p["message"] for p in pf.problems(facts)]


def test_running_interpreter_is_checked_in_process():
    facts = pf.python_facts(sys.executable)
    assert facts["version"] == ".".join(map(str, sys.version_info[:3]))
    assert facts["missing_modules"] == [] and facts["error"] is None


def test_another_interpreter_is_asked(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\nprintf '3.9.2\\n-\\n'\n")
    fake.chmod(0o755)
    facts = pf.python_facts(str(fake))
    assert (facts["version"], facts["missing_modules"]) == ("3.9.2", [])
    facts["min_python"] = "3.10"
    assert messages({"python": facts}) == [
        "Python 3.9.2 on the gateway; the forwarder needs 3.10+ (Debian 12, Ubuntu 22.04, Raspberry Pi OS bookworm or"
        " later)"
    ]


def test_python_problems():
    assert messages({"python": {"path": "/usr/bin/python3", "error": "missing", "version": None}}) == [
        "no Python at /usr/bin/python3 on the gateway; install Python 3.10+ (Debian 12, Ubuntu 22.04, Raspberry Pi OS"
        " bookworm or later) or set pointperfect_gateway_python"
    ]
    minimal = {"path": "/usr/bin/python3", "version": "3.11.2", "missing_modules": ["compileall", "ssl"]}
    assert messages({"python": minimal}) == [
        "Python 3.11.2 at /usr/bin/python3 lacks the standard modules compileall, ssl; install the full python3 package"
        " (apt-get install python3)"
    ]
    # neither venv nor pip is needed: the forwarder is an unpacked zipapp
    assert messages({"python": {"path": "/p", "version": "3.12.1", "missing_modules": [], "min_python": "3.10"}}) == []
    assert messages({"python": {"path": "/p", "version": "3.10.0", "missing_modules": [], "min_python": "3.10"}}) == []


def test_python_2_reports_its_version(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nprintf '2.7.18\\n'\necho 'ImportError: No module named util' >&2\nexit 1\n")
    fake.chmod(0o755)
    facts = pf.python_facts(str(fake))
    assert facts["version"] == "2.7.18" and facts["missing_modules"] is None
    assert "Python 2.7.18 on the gateway; the forwarder needs 3.10+" in messages({"python": facts})[0]


def test_systemd_and_writable_problems(tmp_path):
    assert messages({"systemd": {"booted": False, "pid1": "init"}}) == [
        "PID 1 is init, not systemd; the forwarder runs as a systemd service: boot the gateway with systemd "
        "(apt-get install systemd-sysv)"
    ]
    ro = {"path": "/opt/pointperfect", "exists": False, "checked": "/opt", "read_only": True, "writable": False}
    assert messages({"writable": [ro]}) == [
        "/opt/pointperfect (checked at /opt) is on a read-only filesystem; remount it read-write or choose a writable"
        " location (pointperfect_install_dir, pointperfect_config_dir)"
    ]
    blocker = tmp_path / "file"
    blocker.write_text("")
    facts = pf.writable_facts(str(blocker / "opt" / "pointperfect"))
    assert facts["checked"] == str(blocker) and facts["error"] == "not a directory"
    ok = pf.writable_facts(str(tmp_path / "new" / "dir"))
    assert ok["checked"] == str(tmp_path) and ok["writable"] is True and ok["free_bytes"] > 0


def test_account_and_device_problems(tmp_path):
    acct = pf.account_facts("no-such-group-pf", "no-such-user-pf")
    assert acct["serial_group_exists"] is False and acct["user_exists"] is False
    acct.update(groupadd=False, useradd=False)
    assert [m.split(";")[0] for m in messages({"account": acct})] == [
        "the serial group no-such-group-pf does not exist and groupadd is missing",
        "the service user no-such-user-pf does not exist and useradd is missing",
    ]
    assert pf.device_facts("ttyACM0", "pointperfect_serial_device", "dialout")["form_error"]
    assert pf.device_facts("/dev/../etc/passwd", "pointperfect_serial_device", "dialout")["form_error"]
    absent = pf.device_facts("/dev/ttyPF-not-plugged", "pointperfect_serial_device", "dialout")
    assert absent["exists"] is False and messages({"devices": [absent]}) == []  # hot plug: fine
    null = pf.device_facts("/dev/null", "pointperfect_serial_device", "dialout")
    assert null["type"] == "char" and null["reachable"] is True  # 0666
    shm = pf.device_facts("/dev/shm", "pointperfect_lband_device", "dialout")
    assert messages({"devices": [shm]}) == [
        "pointperfect_lband_device /dev/shm is a directory, not a serial device; set it to the receiver's tty "
        "(ls -l /dev/serial/by-id/)"
    ]
    tty = {"path": "/dev/ttyACM0", "variable": "pointperfect_serial_device", "exists": True, "type": "char",
           "group": "uucp", "mode": "0660", "reachable": False}  # fmt: skip
    assert messages({"devices": [tty], "account": {"serial_group": "dialout"}}) == [
        "pointperfect_serial_device /dev/ttyACM0 belongs to group uucp (mode 0660), so the service user in dialout "
        "cannot open it; set pointperfect_serial_group: uucp"
    ]


def test_gather_on_this_host_is_json_and_one_line_each():
    facts = pf.gather({"python": sys.executable, "systemd": True, "writable": ["/proc/pf-test"],
                       "serial_group": "root", "user": "root",
                       "devices": [{"path": "dev/ttyACM0", "variable": "pointperfect_serial_device"}]})  # fmt: skip
    json.dumps(facts)
    checks = [p["check"] for p in facts["problems"]]
    assert "python" not in checks and "device" in checks
    assert all("\n" not in p["message"] for p in facts["problems"])
    assert pf.gather(None)["python"]["path"] == "/usr/bin/python3"  # the platform defaults (fleet report)


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no /usr/bin/python3")
def test_module_util_compiles_for_old_pythons():
    """It runs on the gateway's Python, which may be older than the controller's: no newer syntax."""
    source = (REPO / "plugins/module_utils/_preflight.py").read_text()
    ast.parse(source, "_preflight.py", feature_version=(3, 7))  # the oldest grammar ast still knows
    subprocess.run(["/usr/bin/python3", "-c", source + "\nprint(gather(None)['python']['version'])"], check=True,
                   capture_output=True)  # fmt: skip
