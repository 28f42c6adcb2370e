"""A forwarder under test: `python -m pointperfect_forwarder` as a child process, and the Contract 1 and 2 files
(credentials.json, forwarder.json) it reads, written for a device of the lab."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .proc import LOOPBACK, free_port, write_atomic

PLANS = ("ip", "ip+lband", "lband", "ntrip")


class ForwarderDaemon:
    """`python -m pointperfect_forwarder -c CONFIG` (the installed forwarder) as a child process, optionally behind
    a prefix such as `ip netns exec NS`; its output in forwarder.log beside the config, status from the config's
    status file, metrics from its port (inside `netns` when one is set)."""

    status_timeout = 20.0  # default wait for a status condition, s
    stop_timeout = 10.0  # default wait for a clean exit after SIGTERM, s

    def __init__(
        self,
        config: Path,
        env: dict | None = None,
        prefix=(),
        *,
        status_timeout: float | None = None,
        stop_timeout: float | None = None,
    ):
        self.config = Path(config)
        self.status_timeout = status_timeout or self.status_timeout
        self.stop_timeout = stop_timeout or self.stop_timeout
        self.netns = None  # a faults.NetNS the forwarder runs in: metrics() scrapes from inside it
        self.cfg = json.loads(self.config.read_text())
        self.log_path = self.config.parent / "forwarder.log"
        health = self.cfg.get("health") or {}
        self.status_path = health.get("status_file")
        self.metrics_port = health.get("metrics_port")
        self.env = {**os.environ, **(env or {})}
        self.prefix = list(prefix)
        self.proc: subprocess.Popen | None = None

    def start(self) -> ForwarderDaemon:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-m", "pointperfect_forwarder", "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

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

    def wait_status(self, predicate, timeout: float | None = None) -> dict:
        """The first status for which `predicate` holds; AssertionError (with the log tail) on timeout or exit."""
        deadline = time.monotonic() + (self.status_timeout if timeout is None else timeout)
        while True:
            st = self.status()
            if st is not None and predicate(st):
                return st
            if not self.alive():
                raise AssertionError(f"forwarder exited {self.proc.returncode}\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"status condition not met; status={st}\nlog tail:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM and wait; the exit code. AssertionError when it has to be killed."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"forwarder ignored SIGTERM\n{self.log()[-3000:]}") from None
        return self.proc.returncode

    def metrics(self) -> dict[str, float]:
        """Contract 4 metrics as {name{labels}: value}."""
        url = f"http://{LOOPBACK}:{self.metrics_port}/metrics"

        def fetch() -> str:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.read().decode()

        text = self.netns.call(fetch) if self.netns else fetch()
        out = {}
        for line in text.splitlines():
            if line.startswith("pointperfect_forwarder_"):
                name, value = line.rsplit(" ", 1)
                out[name.removeprefix("pointperfect_forwarder_")] = float(value)
        return out


def contract_topics(plan: str, regions=("eu",)) -> dict:
    """Contract 1 `topics` of a plan: key topic, region -> top-level correction topic, AssistNow, frequencies.
    Topic names as u-blox/XPLR-HPG-software XPLR-HPG-SW/bin/emuZtpResponse.json and
    sparkfun/SparkFun_RTK_Everywhere_Firmware Firmware/RTK_Everywhere/HTTP_Client.ino show them."""
    if plan not in PLANS:
        raise ValueError(f"plan must be one of {PLANS}, not {plan!r}")
    if plan == "ntrip":
        return {"keys": None, "corrections": {}, "assistnow": None, "frequencies": None}
    if plan == "ip":
        return {
            "keys": "/pp/ubx/0236/ip",
            "corrections": {r: f"/pp/ip/{r}" for r in sorted(regions)},
            "assistnow": "/pp/ubx/mga",
            "frequencies": None,
        }
    return {  # ip+lband: /pp/Lb/<r> over IP too; lband only: no correction topic (they come over the satellite)
        "keys": "/pp/ubx/0236/Lb",
        "corrections": {r: f"/pp/Lb/{r}" for r in sorted(regions)} if plan == "ip+lband" else {},
        "assistnow": "/pp/ubx/mga",
        "frequencies": "/pp/frequencies/Lb",
    }


def write_credentials(
    folder: Path,
    *,
    broker=None,
    caster=None,
    keys: dict | None = None,
    cn: str,
    hardware_id: str = "gw-test",
    regions=None,
    plan: str | None = None,
) -> Path:
    """Contract 1 files for a device of this lab, written as the ztp module would (each file atomically, private
    ones 0600): client.crt/client.key from the broker's PKI when `broker` is given, NTRIP details from `caster`.

    `plan` defaults to `ip` with a broker, else `ntrip`; `lband` (L-band only: key topic /pp/ubx/0236/Lb and
    /pp/frequencies/Lb, no correction topic) and `ip+lband` (/pp/Lb/<r>) need a broker too. `regions` (default
    ("eu",); for `lband` () as the ztp module derives it: an L-band-only answer names no region) is written sorted as
    the plan's region list and sets the correction topics; ntrip: always []. `ntrip.tls_port` is the caster's
    `tls_port` as is (nothing derives it). Returns the path of credentials.json."""
    plan = plan or ("ip" if broker else "ntrip")
    mqtt = plan != "ntrip"
    if mqtt and broker is None:
        raise ValueError(f"plan {plan} needs a broker")
    if regions is None:
        regions = () if plan == "lband" else ("eu",)
    regions = sorted(dict.fromkeys(regions)) if plan != "ntrip" else []
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    creds = {
        "format": 1,
        "hardware_id": hardware_id,
        "given_name": hardware_id,
        "plan": plan,
        "service": "mqtt" if mqtt else "ntrip",
        "client_id": cn if mqtt else None,
        "certificate_not_after": "2030-01-01T00:00:00Z" if mqtt else None,
        "mqtt": None,
        "regions": regions,
        "topics": contract_topics(plan, regions),
        "ntrip": None,
        "dynamickeys": keys,
    }
    if mqtt:
        cert_pem, key_pem = broker.pki.issue_client(cn, 365)
        write_atomic(folder / "client.crt", cert_pem, 0o644)
        write_atomic(folder / "client.key", key_pem)
        creds["mqtt"] = {
            "host": LOOPBACK,
            "port": broker.port,
            "client_id": cn,
            "certificate": str(folder / "client.crt"),
            "private_key": str(folder / "client.key"),
        }
    if caster is not None:
        creds["ntrip"] = {
            "host": LOOPBACK,
            "port": caster.port,
            "tls_port": caster.tls_port,
            "mountpoint": caster.mountpoint,
            "username": caster.user,
            "password": caster.password,
        }
    path = folder / "credentials.json"
    write_atomic(path, json.dumps(creds, indent=2, sort_keys=True) + "\n")
    return path


def write_forwarder_config(path: Path, defaults: dict, **sections) -> Path:
    """forwarder.json (Contract 2) at `path`: `defaults` with each of `sections` merged in (dict sections are
    updated key by key, anything else replaces the default). Returns `path`."""
    cfg = dict(defaults)
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(name), dict):
            cfg[name] = {**cfg[name], **value}
        else:
            cfg[name] = value
    path = Path(path)
    path.write_text(json.dumps(cfg, indent=2))
    return path


# forwarder.json defaults: the role's (roles/gateway/defaults), or quick retries and debug logs for short tests
ROLE_DEFAULTS = {
    "input": "mqtt",
    "ca_file": None,
    "mqtt": {"keepalive": 60},
    "backoff": {"initial": 1, "max": 60, "reset_after": 60},
    "watchdog": {"no_data_timeout": 30},
    "health": {"metrics_address": LOOPBACK, "summary_interval": 60},
    "log_level": "info",
}
FAST_DEFAULTS = {
    "input": "mqtt",
    "ca_file": None,
    "backoff": {"initial": 0.2, "max": 1, "reset_after": 5},
    "watchdog": {"no_data_timeout": 30},
    "health": {"metrics_address": LOOPBACK, "metrics_port": None, "summary_interval": 60},
    "log_level": "debug",
}


def forwarder_config(folder: Path, creds: Path, *, fast: bool = False, **sections) -> Path:
    """FOLDER/forwarder.json for `creds` with the role's defaults (a free metrics port), or with `fast` ones (quick
    retries, debug log, no metrics port); status in FOLDER/status.json; `sections` merge (write_forwarder_config)."""
    folder = Path(folder)
    cfg = json.loads(json.dumps(FAST_DEFAULTS if fast else ROLE_DEFAULTS))
    cfg["credentials_file"] = str(creds)
    cfg["health"]["status_file"] = str(folder / "status.json")
    if not fast:
        cfg["health"]["metrics_port"] = free_port()
    return write_forwarder_config(folder / "forwarder.json", cfg, **sections)
