"""Forwarder test helpers: this suite's device id, quick forwarder defaults, a poll loop and a frame sink."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

from pointperfect_sim import daemon
from pointperfect_sim.lab import lab_keys

__all__ = ["CLIENT_ID", "SRC", "SinkPipeline", "credentials", "forwarder_config", "lab_keys", "wait_until"]
SRC = Path(__file__).resolve().parents[1] / "src"
CLIENT_ID = "7b3f4c1e-5d2a-4e8f-9a6b-0c1d2e3f4a5b"

# Contract 1 files of this suite's device (`regions`, `plan` as daemon.write_credentials takes them)
credentials = functools.partial(daemon.write_credentials, cn=CLIENT_ID, hardware_id="gw-test")
# forwarder.json with quick retries, debug logs and no metrics port unless a test asks
forwarder_config = functools.partial(daemon.forwarder_config, fast=True)


def wait_until(predicate, timeout: float = 20.0) -> bool:
    """Poll `predicate()` until it holds or `timeout` s pass; returns its last result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class SinkPipeline:
    """The pipeline side an input talks to, reduced to a list of the frames' bytes; no position for GGA."""

    def __init__(self):
        self.output_ready = threading.Event()
        self.frames: list[bytes] = []

    def submit(self, frame, priority=False):
        self.frames.append(frame.data)

    def submit_many(self, frames):
        self.frames.extend(frame.data for frame in frames)

    def gga(self):
        return None
