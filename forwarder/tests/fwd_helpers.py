"""Forwarder test helpers: the lab (simulator/, not installed) on sys.path, credentials/config writers, a daemon."""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for extra in (REPO / "simulator", REPO / "forwarder" / "src"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from pointperfect_sim.lab import (  # noqa: E402 - importable once sys.path is set above
    ForwarderDaemon,
    write_credentials,
    write_forwarder_config,
)

SRC = REPO / "forwarder" / "src"
CLIENT_ID = "7b3f4c1e-5d2a-4e8f-9a6b-0c1d2e3f4a5b"


def wait_until(predicate, timeout: float = 20.0) -> bool:
    """Poll `predicate()` until it holds or `timeout` s pass; returns its last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def lab_keys() -> dict:
    """Current and next 4-week keys around now (distinct, recognisable values)."""
    period = 2419200000
    now = int(time.time() * 1000)
    start = now - now % period
    return {
        "current": {"start": start, "duration": period - 1, "value": "c0ffee00" * 4},
        "next": {"start": start + period, "duration": period - 1, "value": "beefcafe" * 4},
    }


def credentials(
    tmp_path: Path, *, broker=None, caster=None, keys: dict | None = None, cn: str = CLIENT_ID, **plan
) -> Path:
    """A Contract 1 credentials directory for the lab broker and/or caster (`plan`: the lab's `regions`, `plan`);
    returns credentials.json."""
    return write_credentials(tmp_path, broker=broker, caster=caster, keys=keys, cn=cn, hardware_id="gw-test", **plan)


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


class Daemon(ForwarderDaemon):
    """The lab's forwarder daemon, run from this source tree."""

    def __init__(self, config: Path, env: dict | None = None):
        super().__init__(config, {"PYTHONPATH": str(SRC), **(env or {})})
