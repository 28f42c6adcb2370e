"""Forwarder test helpers: the lab (simulator/, not installed) on sys.path, credentials/config writers, a daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for extra in (REPO / "simulator", REPO / "forwarder" / "src"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from pointperfect_sim.lab import write_credentials, write_forwarder_config  # noqa: E402 - importable once sys.path is set above

SRC = REPO / "forwarder" / "src"
CLIENT_ID = "7b3f4c1e-5d2a-4e8f-9a6b-0c1d2e3f4a5b"


def lab_keys() -> dict:
    """Current and next 4-week keys around now (distinct, recognisable values)."""
    period = 2419200000
    now = int(time.time() * 1000)
    start = now - now % period
    return {
        "current": {"start": start, "duration": period - 1, "value": "c0ffee00" * 4},
        "next": {"start": start + period, "duration": period - 1, "value": "beefcafe" * 4},
    }


def credentials(tmp_path: Path, *, broker=None, caster=None, keys: dict | None = None, cn: str = CLIENT_ID) -> Path:
    """A Contract 1 credentials directory for the lab broker and/or caster; returns credentials.json."""
    return write_credentials(tmp_path, broker=broker, caster=caster, keys=keys, cn=cn, hardware_id="gw-test")


def forwarder_config(tmp_path: Path, creds: Path, **sections) -> Path:
    """forwarder.json with test-friendly defaults (status file in tmp, no metrics unless asked); `sections` merge."""
    cfg = {
        "credentials_file": str(creds),
        "input": "mqtt",
        "ca_file": None,
        "backoff": {"initial": 0.2, "max": 1, "reset_after": 5},
        "watchdog": {"no_data_timeout": 30},
        "health": {
            "status_file": str(tmp_path / "status.json"),
            "metrics_address": "127.0.0.1",
            "metrics_port": None,
            "summary_interval": 60,
        },
        "log_level": "debug",
    }
    return write_forwarder_config(tmp_path / "forwarder.json", cfg, **sections)


class Daemon:
    """`python -m pointperfect_forwarder -c CONFIG` as a child process with its log in a file."""

    def __init__(self, config: Path, env: dict | None = None):
        self.config = Path(config)
        self.log_path = self.config.parent / "forwarder.log"
        self.status_path = json.loads(self.config.read_text()).get("health", {}).get("status_file")
        self.env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Daemon:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pointperfect_forwarder", "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def status(self) -> dict | None:
        try:
            return json.loads(Path(self.status_path).read_text())
        except (OSError, ValueError, TypeError):
            return None

    def wait_status(self, predicate, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st is not None and predicate(st):
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"status condition not met; status={st}\nlog tail:\n{self.log()[-3000:]}")
            if self.proc.poll() is not None:
                raise AssertionError(f"forwarder exited {self.proc.returncode}\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"forwarder ignored SIGTERM\n{self.log()[-3000:]}") from None
        return self.proc.returncode
