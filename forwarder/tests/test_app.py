"""app.py: the running daemon reloads its configuration on SIGHUP and keeps the running one when the new one
is broken."""

from __future__ import annotations

import json

import pytest
from fwd_helpers import credentials, forwarder_config, lab_keys, wait_until
from pointperfect_sim.proc import free_port
from test_outputs import serial_output


@pytest.mark.timeout(90)
def test_sighup_reloads_config(tmp_path, broker, receiver, daemons):
    creds = credentials(tmp_path, broker=broker, keys=lab_keys())
    cfg = forwarder_config(
        tmp_path, creds, ca_file=str(broker.ca_path), output=serial_output(receiver), mqtt={"port": free_port()}
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
