"""systemd.py: sd_notify datagrams; the daemon's READY, WATCHDOG, STATUS, RELOADING and STOPPING."""

from __future__ import annotations

import socket
import time

import pytest
from fwd_helpers import credentials, forwarder_config, lab_keys
from pointperfect_forwarder.systemd import Notifier
from test_outputs import serial_output


def test_notifier_datagrams(tmp_path):
    path = str(tmp_path / "n.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
        assert n.watchdog_interval == 2.0
        assert n.ready("up") and n.watchdog() and n.stopping()
        assert [sock.recv(100) for _ in range(3)] == [b"READY=1\nSTATUS=up", b"WATCHDOG=1", b"STOPPING=1"]
        n.close()
    finally:
        sock.close()
    assert Notifier({}).notify("READY=1") is False


# --- lab: the daemon and a $NOTIFY_SOCKET -----------------------------------------------------------------------------


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


@pytest.mark.timeout(90)
def test_sd_notify_ready_watchdog_stopping(tmp_path, broker, receiver, daemons, notify_socket):
    creds = credentials(tmp_path, broker=broker, keys=lab_keys())
    cfg = forwarder_config(tmp_path, creds, ca_file=str(broker.ca_path), output=serial_output(receiver))
    fwd = daemons(cfg, env={"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "1000000"})
    seen = _notices(notify_socket, lambda seen: "READY=1" in seen and seen.count("WATCHDOG=1") >= 2)
    assert "READY=1" in seen and seen.count("WATCHDOG=1") >= 2
    assert any(s.startswith("STATUS=") for s in seen)
    assert fwd.stop() == 0
    rest = _notices(notify_socket, lambda _rest: False, timeout=1)  # all it sent while stopping
    assert "STOPPING=1" in rest
    assert fwd.status()["input"]["state"] == "stopped"


@pytest.mark.timeout(90)
def test_only_a_requested_reload_is_announced_to_systemd(tmp_path, broker, receiver, daemons, notify_socket):
    """A reload because the credentials file changed does not send RELOADING=1: the unit would show "reloading",
    and Ansible's systemd module turns a `restarted` handler on such a unit into a plain (no-op) start."""
    creds = credentials(tmp_path, broker=broker, keys=lab_keys())
    cfg = forwarder_config(tmp_path, creds, ca_file=str(broker.ca_path), output=serial_output(receiver))
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
