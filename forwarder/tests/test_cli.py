"""cli.py: a bad configuration exits 2 with one line naming the field; --check-config summarises a good one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fwd_helpers import SRC, credentials, forwarder_config, lab_keys


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pointperfect_forwarder", *args],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        timeout=30,
    )


@pytest.mark.timeout(90)
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


@pytest.mark.timeout(90)
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
