"""health.py: the daemon's status file (Contract 3) and Prometheus metrics (Contract 4)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from fwd_helpers import credentials, forwarder_config, lab_keys
from pointperfect_sim.proc import free_port
from test_outputs import serial_output


def metrics_text(port: int) -> str:
    """The daemon's /metrics page (the lab tests of the other files use it too)."""
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


@pytest.mark.timeout(90)
def test_status_file_and_metrics(tmp_path, broker, receiver, daemons):
    port = free_port()
    creds = credentials(tmp_path, broker=broker, keys=lab_keys())
    cfg = forwarder_config(
        tmp_path, creds, ca_file=str(broker.ca_path), output=serial_output(receiver), health={"metrics_port": port}
    )
    fwd = daemons(cfg)
    st = fwd.wait_status(lambda s: s["input"]["state"] == "connected" and s["receiver"]["config_state"] == "applied")
    assert st["format"] == 1 and st["pid"] == fwd.proc.pid and st["version"] == "0.1.0"
    assert st["input"]["endpoint"] == f"127.0.0.1:{broker.port}"
    assert st["output"] == {**st["output"], "type": "serial", "target": receiver.device_path, "state": "open"}
    assert set(st["streams"]) == {"spartn", "ubx", "rtcm", "nmea"}
    assert st["certificate_not_after"] == "2030-01-01T00:00:00Z"
    assert st["keys"]["current"]["valid"] is True and st["keys"]["last_sent_at"]
    body = metrics_text(port)
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


def test_status_text_is_the_document_one_top_level_field_per_line():
    from pointperfect_forwarder.health import status_text  # noqa: PLC0415 - only here

    doc = {"z": {"b": 1, "a": [None, True, 1.5]}, "a": 'é"\\', "m": None}
    text = status_text(doc)
    assert json.loads(text) == doc
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}" and text.endswith("}\n")
    assert lines[1:-1] == ['  "a": "\\u00e9\\"\\\\",', '  "m": null,', '  "z": {"a": [null, true, 1.5], "b": 1}']
