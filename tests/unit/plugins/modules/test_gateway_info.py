"""Unit tests of the gateway_info module (gateway_status before 0.1.0): credentials summary, status file states,
systemd parsing, no secrets."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.gnss.pointperfect.plugins.modules import gateway_info as gs

from tests.unit import fabricate as fab

REPO = Path(__file__).resolve().parents[4]
NOW = 1_790_000_000.0


def test_credentials_summary_ok_without_secrets(tmp_path):
    fab.write_credentials(tmp_path, fab.credentials(NOW, hwid="gw-7", cert_days=42.5, key_days=3))
    summary = gs.credentials_summary(str(tmp_path), NOW)
    assert summary["state"] == "ok"
    assert summary["hardware_id"] == "gw-7" and summary["plan"] == "ip" and summary["service"] == "mqtt"
    assert summary["certificate_days_remaining"] == 42.5
    assert summary["has_certificate"] is True
    cur, nxt = summary["dynamickeys"]["current"], summary["dynamickeys"]["next"]
    assert cur["valid"] is True and cur["days_remaining"] == 3.0
    assert nxt["valid"] is False and nxt["days_remaining"] == 31.0
    assert cur["valid_until"] == nxt["valid_from"]
    text = json.dumps(summary)
    assert fab.KEY_VALUE not in text and fab.KEY_VALUE[::-1] not in text and "value" not in text
    assert "mqtt" not in summary and "ntrip" not in summary


def test_credentials_ntrip_password_never_returned(tmp_path):
    fab.write_credentials(tmp_path, fab.credentials(NOW, ntrip=True))
    summary = gs.credentials_summary(str(tmp_path), NOW)
    assert summary["state"] == "ok" and summary["service"] == "ntrip"
    assert summary["certificate_days_remaining"] is None and summary["dynamickeys"] is None
    assert fab.PASSWORD not in json.dumps(summary)


def test_credentials_missing_corrupt_unreadable(tmp_path):
    assert gs.credentials_summary(str(tmp_path / "nope"), NOW)["state"] == "missing"
    (tmp_path / "credentials.json").write_text("{not json")
    corrupt = gs.credentials_summary(str(tmp_path), NOW)
    assert corrupt["state"] == "corrupt" and "not valid JSON" in corrupt["error"]
    (tmp_path / "credentials.json").write_text("[1, 2]")
    assert gs.credentials_summary(str(tmp_path), NOW)["state"] == "corrupt"
    other = tmp_path / "other"
    (other / "credentials.json").mkdir(parents=True)  # a directory cannot be read as a file
    unreadable = gs.credentials_summary(str(other), NOW)
    assert unreadable["state"] == "unreadable" and unreadable["error"]


def test_malformed_key_entry_is_reported_not_raised(tmp_path):
    content = fab.credentials(NOW)
    content["dynamickeys"]["next"] = {"start": "soon"}
    fab.write_credentials(tmp_path, content)
    keys = gs.credentials_summary(str(tmp_path), NOW)["dynamickeys"]
    assert keys["next"]["error"] == "malformed key entry" and keys["next"]["valid"] is False
    assert keys["current"]["valid"] is True


def test_status_fresh_stale_missing_corrupt(tmp_path):
    path = tmp_path / "status.json"
    assert gs.status_summary(str(path), NOW, 30)["state"] == "missing"
    fab.write_status(path, fab.status(NOW, updated_ago=2))
    fresh = gs.status_summary(str(path), NOW, 30)
    assert fresh["state"] == "ok" and fresh["age"] == 2.0 and fresh["data"]["bytes_per_second"] == 512.0
    fab.write_status(path, fab.status(NOW, updated_ago=31))
    assert gs.status_summary(str(path), NOW, 30)["state"] == "stale"
    assert gs.status_summary(str(path), NOW, 60)["state"] == "ok"
    path.write_text('{"format": 1, "updated_')  # torn write
    corrupt = gs.status_summary(str(path), NOW, 30)
    assert corrupt["state"] == "corrupt" and corrupt["data"] is None and corrupt["age"] is not None


def test_status_without_updated_at_uses_mtime(tmp_path):
    path = tmp_path / "status.json"
    path.write_text(json.dumps({"format": 1}))
    os.utime(path, (NOW - 100, NOW - 100))
    summary = gs.status_summary(str(path), NOW, 30)
    assert summary["state"] == "stale" and summary["age"] == 100.0


def _runner(rc, out, err=""):
    calls = []

    def run(args):
        calls.append(args)
        return rc, out, err

    return run, calls


@pytest.mark.parametrize(
    ("active", "load", "state"),
    [
        ("active", "loaded", "active"),
        ("failed", "loaded", "failed"),
        ("inactive", "loaded", "inactive"),
        ("activating", "loaded", "activating"),
        ("inactive", "not-found", "absent"),
    ],
)
def test_service_states(active, load, state):
    out = (
        f"LoadState={load}\nActiveState={active}\nSubState=x\nNRestarts=7\n"
        "ExecMainStartTimestamp=Wed 2026-11-25 20:00:00 UTC\nMainPID=0\n"
    )
    run, calls = _runner(0, out)
    summary = gs.service_summary("pointperfect-forwarder", run)
    assert summary["state"] == state
    assert summary["n_restarts"] == 7 and summary["main_pid"] is None
    assert summary["exec_main_start_timestamp"] == "Wed 2026-11-25 20:00:00 UTC"
    assert calls[0][:2] == ["show", "pointperfect-forwarder.service"]
    assert "NRestarts" in calls[0][2]


def test_service_without_systemd_is_unknown():
    run, _ = _runner(1, "", "System has not been booted with systemd as init system (PID 1). Can't operate.\nmore")
    summary = gs.service_summary("pp.service", run)
    assert summary["state"] == "unknown" and summary["name"] == "pp.service"
    assert summary["error"].startswith("System has not been booted")
    assert gs.service_summary("pp", None)["error"] == "systemctl not found"


def _status(pid=42, state="connected", status_state="ok"):
    return {"state": status_state, "data": {"pid": pid, "input": {"state": state}}}


def _unit(pid=42, state="active"):
    return {"state": state, "main_pid": pid}


@pytest.mark.parametrize(
    ("status", "unit", "up"),
    [
        (_status(), _unit(), True),
        (_status(state="waiting_for_position"), _unit(), True),  # NTRIP before the receiver's first fix
        (_status(state="backoff"), _unit(), False),
        (_status(state="auth_failed"), _unit(), False),
        (_status(pid=41), _unit(), False),  # a status file left by the process before the restart
        (_status(), _unit(pid=None), False),
        (_status(pid=None), _unit(pid=None), False),
        (_status(status_state="stale"), _unit(), False),
        (_status(), _unit(state="activating"), False),
        ({"state": "missing", "data": None}, _unit(), False),
        ({"state": "ok", "data": {"pid": 42, "input": "connected"}}, _unit(), False),  # malformed input entry
    ],
)
def test_input_up(status, unit, up):
    assert gs.input_up(status, unit) is up


def test_wait_for_input_up_polls_until_up_or_timeout():
    """The health gate's wait: polls on the gateway until input_up, or returns the last snapshot at the timeout."""
    clock = {"t": 0.0}
    reads = []

    def read(up_after):
        reads.append(clock["t"])
        return {"input_up": clock["t"] >= up_after, "waited": 0}

    def sleep(seconds):
        assert seconds > 0
        clock["t"] += seconds

    got = gs.wait_for_input_up(lambda: read(1.2), 10, clock=lambda: clock["t"], sleep=sleep)
    assert got["input_up"] is True and got["waited"] == 1.5 and reads == [0.0, 0.5, 1.0, 1.5]
    reads.clear()
    clock["t"] = 0.0
    got = gs.wait_for_input_up(lambda: read(99), 2, clock=lambda: clock["t"], sleep=sleep)
    assert got["input_up"] is False and got["waited"] == 2.0 and reads == [0.0, 0.5, 1.0, 1.5, 2.0]
    reads.clear()
    clock["t"] = 0.0
    got = gs.wait_for_input_up(lambda: read(99), 0, clock=lambda: clock["t"], sleep=sleep)
    assert got["input_up"] is False and got["waited"] == 0 and reads == [0.0]  # no wait: one read


def test_module_main_in_check_mode(tmp_path):
    """The module as Ansible runs it: check mode, one JSON result, changed false, nothing written."""
    fab.write_credentials(tmp_path / "etc", fab.credentials(time.time()))
    fab.write_status(tmp_path / "run" / "status.json", fab.status(time.time()))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    fab.fake_systemd(tmp_path / "bin", tmp_path / "units", {"pp.service": ("active", "running", 1)})
    args = {
        "ANSIBLE_MODULE_ARGS": {
            "dest": str(tmp_path / "etc"),
            "status_file": str(tmp_path / "run" / "status.json"),
            "service": "pp",
            "_ansible_check_mode": True,
        }
    }
    env = dict(
        os.environ,
        PATH="{}:{}".format(tmp_path / "bin", os.environ["PATH"]),
        FAKE_SYSTEMD_DIR=str(tmp_path / "units"),
        # the collection tree pytest.ini puts on the import path (module_utils import as Ansible ships them)
        PYTHONPATH=next(p for p in sys.path if p and Path(p, "ansible_collections", "gnss", "pointperfect").exists()),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "ansible_collections.gnss.pointperfect.plugins.modules.gateway_info"],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["changed"] is False
    gw = result["gateway"]
    assert gw["credentials"]["state"] == "ok" and gw["status"]["state"] == "ok"
    assert gw["service"]["state"] == "active" and gw["service"]["n_restarts"] == 1
    assert before == sorted(
        (p.name, p.stat().st_mtime_ns)
        for p in tmp_path.rglob("*")
        if "bin" not in p.parts and "units" not in p.parts and p.name not in ("bin", "units")
    )
    assert fab.KEY_VALUE not in proc.stdout
