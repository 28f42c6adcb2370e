"""The reliability suite's own settings (its device id, the role's forwarder defaults, its results file) beside the
parts of the simulated world its tests use, under one name (`from tests.reliability import suite as L`)."""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

from pointperfect_sim import frames as F
from pointperfect_sim.broker import MOSQUITTO, Mosquitto
from pointperfect_sim.caster import Caster
from pointperfect_sim.daemon import ForwarderDaemon, forwarder_config, write_credentials
from pointperfect_sim.faults import (
    Delivery,
    NetNS,
    Sampler,
    Traffic,
    analyse,
    assert_whole,
    caster_sender,
    mqtt_sender,
    rss_kb,
)
from pointperfect_sim.lab import lab_keys
from pointperfect_sim.proc import free_port

__all__ = [
    "MOSQUITTO",
    "Caster",
    "Delivery",
    "F",
    "ForwarderDaemon",
    "Mosquitto",
    "NetNS",
    "Sampler",
    "Traffic",
    "analyse",
    "assert_whole",
    "caster_sender",
    "forwarder_config",
    "free_port",
    "lab_keys",
    "mqtt_sender",
    "rss_kb",
]
REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "forwarder" / "src"
CLIENT_ID = "5e0c7a1d-2b3f-4c5d-8e9f-0a1b2c3d4e5f"
RESULTS = Path(os.environ.get("PP_RELIABILITY_RESULTS", REPO / ".build" / "reliability" / "results.jsonl"))
TIMEOUTS = {"status_timeout": 30.0, "stop_timeout": 15.0}  # forwarders here run the role's slower retries

# Contract 1 files of this suite's device (atomically, private files 0600, as the ztp module writes them)
credentials = functools.partial(write_credentials, cn=CLIENT_ID, hardware_id="gw-rel")
Daemon = functools.partial(ForwarderDaemon, **TIMEOUTS)


def record(name: str, **figures) -> None:
    """Append one measurement line to the results file (docs/reliability.md quotes these)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps({"test": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}) + "\n")
    print(f"[reliability] {name}: {json.dumps(figures)}")
