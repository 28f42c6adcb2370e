"""`make demo`: the whole job on the embedded default world, then a table of what every gateway's receiver gets.

Starts the ZTP API simulator, a real Mosquitto (mutual TLS) and a real RTKLIB caster behind stunnel, three systemd
gateways (systemd-nspawn) each wired to a simulated receiver on a pseudo-terminal, runs the provision playbook and
the status playbook, prints the table, and tears everything down (DEMO_KEEP=1 keeps it running until Ctrl-C).
Region auto: one receiver reports a fix in Colorado, so its gateway subscribes the US corrections; the table says
which region each gateway chose and why.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from pointperfect_sim import fleet as fleet_harness
from pointperfect_sim import profiles
from pointperfect_sim.broker import Mosquitto
from pointperfect_sim.caster import Caster
from pointperfect_sim.lab import lab_keys
from pointperfect_sim.pki import PKI
from pointperfect_sim.receiver import ReceiverSim
from pointperfect_sim.replay import DEFAULT_TOPICS, CasterFeeder, MqttReplayer
from pointperfect_sim.server import run_in_thread

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("PP_DEMO_DIR", REPO / ".demo")).resolve()

# Demo gateways gw-01.. (the harness's names), their simulated device profiles (two MQTT plans, one NTRIP) and
# where their receivers are: gw-03's plan lists every region and its receiver is in the US.
EU, US = (52.0, 5.0, 10.0), (39.7, -105.0, 1600.0)
GATEWAYS = (
    ("gw-01", profiles.DEMO_IP_EU, "mqtt", EU),
    ("gw-02", profiles.DEMO_NTRIP, "ntrip", EU),
    ("gw-03", profiles.DEMO_LIVE_BOTH, "mqtt", US),
)
NTRIP_USER, NTRIP_PASSWORD = "demo", "demo"  # the shared caster account of the DEMO_NTRIP profile


def say(msg: str) -> None:
    print(f"demo: {msg}", flush=True)


def playbook(name: str, inventory: Path, env: dict, *extra: str, quiet: bool = False) -> None:
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), f"gnss.pointperfect.{name}"]
    say("$ ansible-playbook " + " ".join(cmd[1:] + list(extra)) + (" (output hidden)" if quiet else ""))
    run = subprocess.run([*cmd, *extra], env=env, check=False, capture_output=quiet, text=True)
    if run.returncode:
        sys.exit(f"demo: ansible-playbook {name} failed ({run.returncode})\n{(run.stdout or '')[-4000:]}")


def host_vars(fleet_dir: Path, sim, broker: Mosquitto, caster: Caster) -> None:
    """Per-gateway inventory variables: its token, the simulator's API and CA, and the lab's loopback ports."""
    hv = fleet_dir / "host_vars"
    hv.mkdir(exist_ok=True)
    for name, token, service, _ in GATEWAYS:
        lines = [
            f"pointperfect_ztp_token: {token}",
            f"pointperfect_ztp_api_url: {sim.url}",
            f"pointperfect_ztp_ca_path: {sim.ca_path}",
            f"pointperfect_ca_file: {broker.ca_path}",
            f"pointperfect_input: {service}",
            f"pointperfect_mqtt_port: {broker.port}",
            f"pointperfect_ntrip_port: {caster.tls_port}",
        ]
        (hv / f"{name}.yml").write_text("---\n" + "\n".join(lines) + "\n")


def receiver_table(receivers: dict[str, ReceiverSim], report: dict) -> str:
    """What each receiver got, with the region its forwarder chose and why (status.json region, via the report)."""
    rows = [("gateway", "input", "region (why)", "keys", "SPARTN frames", "bytes", "config applied", "garbage")]
    by_host = {row["host"]: row for row in report.get("gateways", [])}
    for name, _, service, _ in GATEWAYS:
        rx = receivers[name]
        spartn = rx.frames_of("spartn")
        row = by_host.get(name, {})
        region = f"{row['region']} ({row.get('region_source')})" if row.get("region") else "-"
        rows.append(
            (
                name,
                service,
                region,
                "yes" if rx.keys else "no",
                str(len(spartn)),
                str(sum(len(f.raw) for f in rx.frames)),
                "yes" if rx.config else "no",
                str(rx.garbage_bytes),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def start_lab(stack: contextlib.ExitStack, state: dict):
    """The ZTP API simulator, Mosquitto with the replayed keys and corrections, the caster with its feed."""
    say("starting the ZTP API simulator")
    sim = run_in_thread(STATE / "sim", profiles.DEMO_PROFILES)
    stack.callback(sim.stop)
    pki = PKI(STATE / "sim" / "pki")  # the simulator's CA: the broker and caster trust its devices
    say("starting Mosquitto (mutual TLS) and the NTRIP caster (str2str + stunnel4)")
    broker = Mosquitto(pki, STATE / "broker")
    broker.start()
    stack.callback(broker.stop)
    caster = Caster(STATE / "caster", None, None, "NEAR-SPARTN", NTRIP_USER, NTRIP_PASSWORD, pki)
    caster.start()
    stack.callback(caster.stop)
    replayer = MqttReplayer(broker, dict(DEFAULT_TOPICS, corrections="/pp/ip/eu")).connect()
    replayer.publish_keys(lab_keys())
    replayer.start_stream(loop=True)
    replayer.start_stream("/pp/ip/us", loop=True)  # for the gateway whose receiver is in the US
    stack.callback(replayer.stop)
    feeder = CasterFeeder(caster).start(loop=True)
    stack.callback(feeder.stop)
    state["pids"] += [broker.pid, *caster.pids]
    return sim, broker, caster


def start_receivers(stack: contextlib.ExitStack) -> dict[str, ReceiverSim]:
    receivers = {}
    (STATE / "rx").mkdir(exist_ok=True)
    for name, _, _, position in GATEWAYS:
        rx = ReceiverSim(STATE / "rx" / name, position=position).start()
        stack.callback(rx.close)
        receivers[name] = rx
    return receivers


def boot_fleet(stack: contextlib.ExitStack, state: dict, receivers: dict[str, ReceiverSim]) -> fleet_harness.Fleet:
    say(f"booting {len(GATEWAYS)} systemd gateways (the first run builds a Debian rootfs, about a minute)")
    fleet_dir = STATE / "fleet"
    fleet = fleet_harness.Fleet(
        len(GATEWAYS), fleet_dir, serial_devices=[str(receivers[g[0]].slave_path) for g in GATEWAYS]
    )
    state["fleet"] = str(fleet_dir)
    (STATE / "demo.json").write_text(json.dumps(state))
    fleet.up()
    stack.callback(fleet.down)
    assert [gw.name for gw in fleet.gateways] == [g[0] for g in GATEWAYS], "harness naming changed"
    return fleet


def provision_twice(sim, fleet: fleet_harness.Fleet, env: dict) -> None:
    """The provision playbook, then again: the second run changes nothing and does not call the ZTP API."""
    playbook("provision", fleet.inventory_path, env)
    say("second run: nothing changes and the ZTP API is not called")
    before = sim.calls()["total"]
    playbook("provision", fleet.inventory_path, env)
    say(f"ZTP API calls in the second run: {sim.calls()['total'] - before}")


def sample_status(fleet: fleet_harness.Fleet, env: dict) -> tuple[Path, dict]:
    """The status playbook every 5 s for 20 s (the report's bytes/s history); the report's folder and status.json."""
    report_dir = STATE / "report"
    shutil.rmtree(report_dir, ignore_errors=True)
    say("letting corrections flow for 20 s, sampling the fleet's status for the report's bytes/s history")
    for last in (False, False, False, True):
        time.sleep(5)
        playbook("status", fleet.inventory_path, env, "-e", f"pointperfect_report_dir={report_dir}", quiet=not last)
    return report_dir, json.loads((report_dir / "status.json").read_text())


def keep_running() -> None:
    say("DEMO_KEEP=1: running until Ctrl-C (or `make demo-down` from another shell)")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)


def up(args: argparse.Namespace) -> int:
    down(args)
    STATE.mkdir(parents=True, exist_ok=True)
    state: dict = {"pids": []}
    stack = contextlib.ExitStack()
    with stack:
        sim, broker, caster = start_lab(stack, state)
        receivers = start_receivers(stack)
        fleet = boot_fleet(stack, state, receivers)
        host_vars(STATE / "fleet", sim, broker, caster)

        env = fleet.ansible_env()
        env["ANSIBLE_NOCOLOR"] = "1"
        provision_twice(sim, fleet, env)
        report_dir, report = sample_status(fleet, env)
        print()
        print(receiver_table(receivers, report))
        print()
        say(f"HTML report: {report_dir / 'index.html'}")
        if os.environ.get("DEMO_KEEP") == "1":
            keep_running()
        say("tearing down")
    with contextlib.suppress(FileNotFoundError):
        (STATE / "demo.json").unlink()
    return 0


def down(_args: argparse.Namespace | None = None) -> int:
    """Stop what an interrupted demo left running: gateways by the fleet's records, lab processes by PID."""
    record = STATE / "demo.json"
    if not record.exists():
        return 0
    state = json.loads(record.read_text())
    if state.get("fleet"):
        fleet_harness.down(state["fleet"])
    for pid in state.get("pids", []):
        with contextlib.suppress(ProcessLookupError, FileNotFoundError, PermissionError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(STATE).encode() in cmdline:  # ours: started with a path under the demo dir
                os.kill(pid, signal.SIGTERM)
    record.unlink()
    say("stopped what the previous demo left running")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cmd", choices=("up", "down"))
    args = parser.parse_args()
    return up(args) if args.cmd == "up" else down(args)


if __name__ == "__main__":
    sys.exit(main())
