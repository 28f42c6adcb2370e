"""Fabricated Contract 1 (credentials.json) and Contract 3 (status file) content, and gateway_info results, for the
tests of gateway_info, the fleet report and the status playbook."""

import datetime
import json
import os
import stat
from pathlib import Path

DAY = 86400
NOW = 1_790_000_000.0  # the clock of the fleet report's unit tests
KEY_VALUE = "0123456789abcdef0123456789abcdef"
PASSWORD = "s3cret-ntrip-password"


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def credentials(now: float, *, hwid="gw-01", plan="ip", cert_days=200.0, key_days=20.0, ntrip=False) -> dict:
    """credentials.json content; the current key has `key_days` left, the next one 28 days more."""
    key_len_ms = 28 * DAY * 1000
    cur_end_ms = int((now + key_days * DAY) * 1000)
    keys = {
        "current": {"start": cur_end_ms - key_len_ms, "duration": key_len_ms, "value": KEY_VALUE},
        "next": {"start": cur_end_ms, "duration": key_len_ms, "value": KEY_VALUE[::-1]},
    }
    return {
        "format": 1,
        "hardware_id": hwid,
        "given_name": hwid,
        "plan": "ntrip" if ntrip else plan,
        "service": "ntrip" if ntrip else "mqtt",
        "client_id": f"4f1b0e0c-0000-4000-8000-{len(hwid):012d}",
        "certificate_not_after": None if ntrip else iso(now + cert_days * DAY),
        "mqtt": None
        if ntrip
        else {
            "host": "127.0.0.1",
            "port": 8883,
            "client_id": "c",
            "certificate": "/etc/pointperfect/client.crt",
            "private_key": "/etc/pointperfect/client.key",
        },
        # Contract 1 (issue 12): every region of the plan, one correction topic per region
        "regions": [] if ntrip else ["eu", "us"],
        "topics": {
            "keys": "/pp/ubx/0236/ip",
            "corrections": {"eu": "/pp/ip/eu", "us": "/pp/ip/us"},
            "assistnow": "/pp/ubx/mga",
            "frequencies": None,
        },
        "ntrip": {
            "host": "127.0.0.1",
            "port": 2101,
            "tls_port": None,  # not a u-blox caster: the TLS port is set explicitly
            "mountpoint": "NEAR-SPARTN",
            "username": "u",
            "password": PASSWORD,
        }
        if ntrip
        else None,
        "dynamickeys": None if ntrip else keys,
    }


def write_credentials(dest: Path, content: dict) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "credentials.json"
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    path.chmod(0o600)
    if content.get("certificate_not_after"):
        (dest / "client.crt").write_text("-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n")
    return path


def status(
    now: float,
    *,
    state="connected",
    last_data_age=1.0,
    bps=512.0,
    healthy=True,
    reconnects=0,
    dropped=0,
    config_state="applied",
    last_error=None,
    updated_ago=0.5,
    input_type="mqtt",
    region="eu",
    region_source="position",
    lband=None,
) -> dict:
    """Contract 3 status file content as the forwarder writes it; `lband` = the lband object's fields over mode off."""
    lband_obj = {"mode": "off", "device": None, "frequency_hz": None, "d9s_state": None, "pmp_frames": 0}
    lband_obj.update(lband or {})
    return {
        "format": 1,
        "updated_at": iso(now - updated_ago),
        "started_at": iso(now - 3600),
        "pid": 4242,
        "version": "0.1.0",
        "healthy": healthy,
        "region": {
            "selected": region,
            "source": region_source if region else None,
            "available": ["eu", "us"] if input_type == "mqtt" else [],
            "topic": f"/pp/ip/{region}" if region and lband_obj["mode"] == "off" else None,
        },
        "lband": lband_obj,
        "input": {
            "type": input_type,
            "state": state,
            "endpoint": "127.0.0.1:8883" if input_type == "mqtt" else "127.0.0.1:2102",
            "connected_since": iso(now - 3500) if state == "connected" else None,
            "last_data_at": iso(now - last_data_age) if last_data_age is not None else None,
            "last_data_age": last_data_age,
            "bytes": 123456,
            "frames": 789,
            "reconnects": reconnects,
            "last_error": last_error,
        },
        "output": {
            "type": "serial",
            "target": "/dev/ttyACM0",
            "state": "open",
            "bytes": 123000,
            "frames": 780,
            "dropped_frames": dropped,
            "dropped_bytes": dropped * 100,
        },
        "streams": {
            "spartn": {"frames": 700, "bytes": 120000},
            "ubx": {"frames": 80, "bytes": 3000},
            "rtcm": {"frames": 0, "bytes": 0},
            "nmea": {"frames": 9, "bytes": 456},
        },
        "bytes_per_second": bps,
        "keys": {
            "current": {"valid_from": iso(now - 8 * DAY), "valid_until": iso(now + 20 * DAY), "valid": True},
            "next": {"valid_from": iso(now + 20 * DAY), "valid_until": iso(now + 48 * DAY), "valid": False},
            "last_sent_at": iso(now - 60),
        },
        "certificate_not_after": iso(now + 200 * DAY),
        "receiver": {"config_state": config_state, "resets_detected": 0},
        "last_error": last_error,
    }


def write_status(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


FAKE_SYSTEMCTL = """#!/bin/sh
# Fake systemctl for tests: `show UNIT --property=...` prints $FAKE_SYSTEMD_DIR/UNIT, or a not-found unit.
[ "$1" = "show" ] || { echo "fake systemctl: only show" >&2; exit 1; }
if [ -f "$FAKE_SYSTEMD_DIR/$2" ]; then cat "$FAKE_SYSTEMD_DIR/$2"; else
  printf 'LoadState=not-found\\nActiveState=inactive\\nSubState=dead\\n'
  printf 'NRestarts=0\\nExecMainStartTimestamp=\\nMainPID=0\\n'
fi
"""


def fake_systemd(bin_dir: Path, units_dir: Path, units: dict) -> None:
    """Install a fake `systemctl` in bin_dir; units maps unit name -> (ActiveState, SubState, NRestarts)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    units_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "systemctl"
    script.write_text(FAKE_SYSTEMCTL)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    for unit, (active, sub, restarts) in units.items():
        (units_dir / unit).write_text(
            f"LoadState=loaded\nActiveState={active}\nSubState={sub}\nNRestarts={restarts}\n"
            f"ExecMainStartTimestamp=Wed 2026-11-25 20:00:00 UTC\nMainPID={4242 if active == 'active' else 0}\n"
        )


def unprovisioned_result(*, preflight, service="absent", credentials="missing") -> dict:
    """A registered gateway_info result of a gateway the role never provisioned (or did, for service=active)."""
    return {
        "changed": False,
        "failed": False,
        "gateway": {
            "collected_at": "2026-09-21T12:00:00Z",
            "credentials": {"state": credentials, "path": "/etc/pointperfect/credentials.json"},
            "status": {"state": "missing", "path": "/run/pointperfect/status.json", "age": None, "data": None},
            "service": {"state": service, "name": "pointperfect-forwarder.service"},
            "preflight": preflight,
        },
    }
