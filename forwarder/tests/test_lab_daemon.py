"""Integration: the daemon's contract with systemd, Prometheus, the status file, SIGHUP, and bad configuration."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from fwd_helpers import SRC, credentials, forwarder_config, lab_keys, wait_until
from pointperfect_sim.proc import free_port

pytestmark = pytest.mark.timeout(90)


def _serial(receiver):
    return {"type": "serial", "device": receiver.device_path, "baudrate": 115200}


def test_status_file_and_metrics(tmp_path, broker, receiver, daemons):
    port = free_port()
    creds = credentials(tmp_path, broker=broker, keys=lab_keys())
    cfg = forwarder_config(
        tmp_path, creds, ca_file=str(broker.ca_path), output=_serial(receiver), health={"metrics_port": port}
    )
    fwd = daemons(cfg)
    st = fwd.wait_status(lambda s: s["input"]["state"] == "connected" and s["receiver"]["config_state"] == "applied")
    assert st["format"] == 1 and st["pid"] == fwd.proc.pid and st["version"] == "0.1.0"
    assert st["input"]["endpoint"] == f"127.0.0.1:{broker.port}"
    assert st["output"] == {**st["output"], "type": "serial", "target": receiver.device_path, "state": "open"}
    assert set(st["streams"]) == {"spartn", "ubx", "rtcm", "nmea"}
    assert st["certificate_not_after"] == "2030-01-01T00:00:00Z"
    assert st["keys"]["current"]["valid"] is True and st["keys"]["last_sent_at"]
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for name in (
        "up 1.0",
        "input_connected 1.0",
        'input_bytes_total{stream="spartn"}',
        "output_bytes_total",
        'output_frames_total{stream="ubx"}',
        "frames_dropped_total 0.0",
        "reconnects_total",
        "last_data_age_seconds",
        'key_valid_until_timestamp_seconds{key="next"}',
        "certificate_not_after_timestamp_seconds 1.893456e+09",
        "receiver_configured 1.0",
        "receiver_resets_total 0.0",
        "start_time_seconds",
        "healthy",
    ):
        assert f"pointperfect_forwarder_{name}" in body, name


@pytest.fixture
def notify_socket(tmp_path):
    """The $NOTIFY_SOCKET a daemon reports to, as systemd's would be; its path is getsockname()."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    yield sock
    sock.close()


def _notices(sock: socket.socket, until, timeout: float = 15) -> list[str]:
    """sd_notify fields received until `until(fields)` holds (or the timeout)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(seen):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            seen += sock.recv(4096).decode().split("\n")
        except TimeoutError:
            break
    return seen


def test_sd_notify_ready_watchdog_stopping(tmp_path, broker, receiver, daemons, notify_socket):
    creds = credentials(tmp_path, broker=broker, keys=lab_keys())
    cfg = forwarder_config(tmp_path, creds, ca_file=str(broker.ca_path), output=_serial(receiver))
    fwd = daemons(cfg, env={"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "1000000"})
    seen = _notices(notify_socket, lambda seen: "READY=1" in seen and seen.count("WATCHDOG=1") >= 2)
    assert "READY=1" in seen and seen.count("WATCHDOG=1") >= 2
    assert any(s.startswith("STATUS=") for s in seen)
    assert fwd.stop() == 0
    rest = _notices(notify_socket, lambda _rest: False, timeout=1)  # all it sent while stopping
    assert "STOPPING=1" in rest
    assert fwd.status()["input"]["state"] == "stopped"


def test_only_a_requested_reload_is_announced_to_systemd(tmp_path, broker, receiver, daemons, notify_socket):
    """A reload because the credentials file changed does not send RELOADING=1: the unit would show "reloading",
    and Ansible's systemd module turns a `restarted` handler on such a unit into a plain (no-op) start."""
    creds = credentials(tmp_path, broker=broker, keys=lab_keys())
    cfg = forwarder_config(tmp_path, creds, ca_file=str(broker.ca_path), output=_serial(receiver))
    fwd = daemons(cfg, env={"NOTIFY_SOCKET": notify_socket.getsockname()})
    assert "READY=1" in _notices(notify_socket, lambda seen: "READY=1" in seen)
    fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    creds.write_text(creds.read_text())  # a new mtime, as a rotation writes it
    seen = _notices(notify_socket, lambda _seen: "reloading (credentials file changed)" in fwd.log(), timeout=20)
    seen += _notices(notify_socket, lambda _seen: False, timeout=2)  # what the reload sends when it is done
    assert "reloading (credentials file changed)" in fwd.log()
    assert "RELOADING=1" not in seen and any(f.startswith("STATUS=") for f in seen), seen
    fwd.signal(__import__("signal").SIGHUP)
    seen = _notices(notify_socket, lambda seen: "READY=1" in seen)
    events = [f for f in seen if f and not f.startswith("STATUS=")]  # a periodic STATUS= may come first
    assert events[:2] == ["RELOADING=1", "READY=1"], seen


def test_sighup_reloads_config(tmp_path, broker, receiver, daemons):
    creds = credentials(tmp_path, broker=broker, keys=lab_keys())
    cfg = forwarder_config(
        tmp_path, creds, ca_file=str(broker.ca_path), output=_serial(receiver), mqtt={"port": free_port()}
    )  # nobody listens there
    fwd = daemons(cfg)
    fwd.wait_status(lambda s: s["input"]["reconnects"] >= 1 and s["input"]["state"] != "connected")
    data = json.loads(cfg.read_text())
    data["mqtt"]["port"] = None  # back to the credentials' broker
    cfg.write_text(json.dumps(data))
    fwd.signal(__import__("signal").SIGHUP)
    fwd.wait_status(lambda s: s["input"]["state"] == "connected" and s["input"]["endpoint"].endswith(str(broker.port)))
    # a broken config on SIGHUP is refused and the running one is kept
    cfg.write_text('{"input": "carrier-pigeon"}')
    fwd.signal(__import__("signal").SIGHUP)
    wait_until(lambda: "reload (SIGHUP) refused" in fwd.log(), 15)
    assert fwd.proc.poll() is None
    assert "reload (SIGHUP) refused" in fwd.log() and "config error: input:" in fwd.log()
    assert fwd.status()["input"]["state"] == "connected"


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pointperfect_forwarder", *args],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"output": {"baudrate": "fast"}}, "config error: output.baudrate: must be an integer"),
        ({"input": "udp"}, "config error: input: must be one of mqtt, ntrip"),
        ({"watchdog": {"no_data_timeout": 0}}, "config error: watchdog.no_data_timeout: must be between 1 and 86400"),
        ({"ntrip": {"versoin": 2}}, "config error: ntrip.versoin: unknown field"),
        ({"input": "ntrip"}, "config error: credentials.ntrip: null: this plan has no NTRIP service (use input mqtt)"),
        (
            {"credentials_file": "/nonexistent/credentials.json"},
            "config error: credentials_file: /nonexistent/credentials.json: no such file",
        ),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, broker, change, message):
    creds = credentials(tmp_path, broker=broker, keys=lab_keys())
    cfg = forwarder_config(tmp_path, creds, **change)
    for args in (["-c", str(cfg), "--check-config"], ["-c", str(cfg)]):
        res = _cli(*args)
        assert res.returncode == 2
        assert res.stderr.strip() == message
        assert res.stdout == ""


def test_check_config_ok(tmp_path, broker):
    creds = credentials(tmp_path, broker=broker, keys=lab_keys())
    res = _cli("-c", str(forwarder_config(tmp_path, creds)), "--check-config")
    assert res.returncode == 0, res.stderr
    head = f"config ok: mqtt 127.0.0.1:{broker.port} region eu (the plan's only region)"
    assert res.stdout.startswith(f"{head} topics /pp/ubx/0236/ip, /pp/ip/eu -> serial /dev/ttyACM0, keys 2")
    creds = credentials(tmp_path, broker=broker, keys=lab_keys(), regions=["eu", "us"])
    cfg = forwarder_config(tmp_path, creds, fixed_position={"lat": 39.7, "lon": -105})
    res = _cli("-c", str(cfg), "--check-config")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(
        f"config ok: mqtt 127.0.0.1:{broker.port} region auto (eu, us: from the receiver position; fixed_position "
        "gives us) topics /pp/ubx/0236/ip + 1 correction topic once a region is chosen -> serial /dev/ttyACM0"
    )
