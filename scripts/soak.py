#!/usr/bin/env python3
"""Soak: two forwarders (MQTT and NTRIP) at 10x the real rate for N minutes with random faults; RSS every 10 s.

Writes DIR/soak.csv (one row per forwarder and sample) and DIR/summary.json; exits 1 when a check fails.
Usage: scripts/soak.py --minutes 30 [--dir .build/soak] [--seed N]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pointperfect_sim.broker import Mosquitto
from pointperfect_sim.caster import Caster
from pointperfect_sim.daemon import ForwarderDaemon, forwarder_config, write_credentials
from pointperfect_sim.faults import Traffic, analyse, caster_sender, mqtt_sender, rss_kb
from pointperfect_sim.lab import lab_keys
from pointperfect_sim.pki import PKI
from pointperfect_sim.receiver import ReceiverSim
from pointperfect_sim.replay import MqttReplayer

REPO = Path(__file__).resolve().parents[1]
CLIENT_ID = "5e0c7a1d-2b3f-4c5d-8e9f-0a1b2c3d4e5f"  # the soak's device (the reliability suite's)

RATE_FPS, FRAME_SIZE = 35, 80  # ~35 x 92 B = ~3.2 KB/s per stream: 10x the real 323 B/s
SAMPLE_EVERY = 10.0
FLOW_TIMEOUT = 180.0


def slope_kb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, KB) in KB per minute."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    den = sum((p[0] - mx) ** 2 for p in points) or 1.0
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den * 60


class Rig:
    """One forwarder with its receiver and its traffic."""

    def __init__(self, name, fwd, receiver, traffic):
        self.name, self.fwd, self.receiver, self.traffic = name, fwd, receiver, traffic
        self.pid = fwd.pid

    def flowing_after(self, t: float, timeout: float = FLOW_TIMEOUT) -> float | None:
        """Seconds from t until a frame published after t reaches the receiver (None: never)."""

        def ok(r):
            sent = {s.raw for s in self.traffic.snapshot() if s.t >= t}
            return any(f.raw in sent for f in r.frames_of("spartn")[-100:])

        if self.receiver.wait_for(ok, timeout, 0.2):
            return round(time.monotonic() - t, 2)
        return None


@dataclass
class Services:
    """What the forwarders connect to: the broker (with its replayer and the published keys) and the caster."""

    broker: Mosquitto
    caster: Caster
    replayer: MqttReplayer
    keys: dict


FAULTS = ["broker_restart", "caster_drop", "unplug_replug", "receiver_reset"]
FAULT_TARGET = {"broker_restart": "mqtt", "caster_drop": "ntrip"}  # the others hit a random forwarder's receiver


def start_rig(name: str, folder: Path, receiver: ReceiverSim, svc: Services) -> Rig:
    """A forwarder of input `name` (mqtt or ntrip) writing to `receiver`, connected, with its traffic running."""
    folder.mkdir()
    serial = {"type": "serial", "device": receiver.device_path, "baudrate": 115200}
    if name == "mqtt":
        creds = write_credentials(folder / "etc", broker=svc.broker, keys=svc.keys, cn=CLIENT_ID, hardware_id="gw-rel")
        cfg = forwarder_config(folder, creds, ca_file=str(svc.broker.ca_path), output=serial)
        send = mqtt_sender(svc.replayer)
    else:
        creds = write_credentials(folder / "etc", caster=svc.caster, keys=svc.keys, cn=CLIENT_ID, hardware_id="gw-rel")
        cfg = forwarder_config(
            folder, creds, input="ntrip", ca_file=str(svc.caster.ca_path), output=serial, ntrip={"gga_interval": 5}
        )
        send = caster_sender(svc.caster)
    fwd = ForwarderDaemon(cfg, status_timeout=30, stop_timeout=15).start()
    fwd.wait_status(lambda s: s["input"]["state"] == "connected", 60)
    return Rig(name, fwd, receiver, Traffic(send, RATE_FPS, FRAME_SIZE).start())


def sample(rig: Rig, now: float, t_start: float) -> dict:
    """One soak.csv row: the forwarder's RSS, PID and counters, and what its receiver got."""
    st = rig.fwd.status() or {}
    return {
        "t_s": round(now - t_start, 1),
        "forwarder": rig.name,
        "rss_kb": rss_kb(rig.pid),
        "pid_same": rig.fwd.alive() and rig.fwd.pid == rig.pid,
        "input_state": (st.get("input") or {}).get("state"),
        "frames_out": (st.get("output") or {}).get("frames"),
        "dropped": (st.get("output") or {}).get("dropped_frames"),
        "reconnects": (st.get("input") or {}).get("reconnects"),
        "delivered": len(rig.receiver.frames_of("spartn")),
        "published": len(rig.traffic.sent),
    }


def inject(kind: str, rig: Rig, svc: Services, rnd: random.Random) -> None:
    if kind == "broker_restart":
        svc.broker.restart()
        svc.replayer.wait_connected(15)
        svc.replayer.publish_keys(svc.keys)
    elif kind == "caster_drop":
        svc.caster.restart()
    elif kind == "unplug_replug":
        rig.receiver.unplug()
        time.sleep(rnd.uniform(2, 8))
        rig.receiver.replug()
    else:
        rig.receiver.reset()


def fault(rigs: dict[str, Rig], svc: Services, rnd: random.Random, t_start: float) -> dict:
    """One random fault and the seconds until corrections flow again (recovery_s None: they never did)."""
    kind = rnd.choice(FAULTS)
    target = FAULT_TARGET.get(kind) or rnd.choice(list(rigs))
    rig = rigs[target]
    t0 = time.monotonic()
    inject(kind, rig, svc, rnd)
    t1 = time.monotonic()
    recovery = rig.flowing_after(t1)
    return {
        "t_s": round(t0 - t_start, 1),
        "kind": kind,
        "forwarder": target,
        "fault_s": round(t1 - t0, 1),
        "recovery_s": recovery,
    }


def soak(
    rigs: dict[str, Rig], svc: Services, rnd: random.Random, t_start: float, minutes: float, *, rows: list, faults: list
) -> None:
    """Sample every SAMPLE_EVERY s and inject random faults for `minutes` from t_start, into rows and faults."""
    end = t_start + minutes * 60
    next_sample = t_start
    next_fault = t_start + rnd.uniform(30, 60)
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_sample:
            for rig in rigs.values():
                rows.append(sample(rig, now, t_start))
            next_sample += SAMPLE_EVERY
        if now >= next_fault and now < end - 60:
            faults.append(fault(rigs, svc, rnd, t_start))
            print(f"soak: {faults[-1]}", flush=True)
            next_fault = time.monotonic() + rnd.uniform(20, 60)
        time.sleep(0.5)


def forwarder_summary(rig: Rig, rows: list[dict]) -> dict:
    """Delivery, throughput and RSS (first, last, range, slopes of the steady part and of its halves) of one rig."""
    d = analyse(rig.traffic, rig.receiver, 0, 0)
    samples = [(r["t_s"], r["rss_kb"]) for r in rows if r["forwarder"] == rig.name and r["rss_kb"]]
    steady = [p for p in samples if p[0] >= 60] or samples
    mid = (steady[0][0] + steady[-1][0]) / 2 if steady else 0.0  # halves of the steady part: warm-up or leak
    sent = rig.traffic.snapshot()
    span = (sent[-1].t - sent[0].t) if len(sent) > 1 else 1.0
    return {
        "published": d.published,
        "delivered": d.delivered,
        "lost": d.published - d.delivered,
        "foreign": d.foreign,
        "in_order": d.in_order,
        "garbage_bytes": d.garbage_bytes,
        "bytes_per_s": round(sum(len(s.raw) for s in sent) / span, 1),
        "rss_kb_first": samples[0][1] if samples else None,
        "rss_kb_last": samples[-1][1] if samples else None,
        "rss_kb_min": min(p[1] for p in samples) if samples else None,
        "rss_kb_max": max(p[1] for p in samples) if samples else None,
        "rss_slope_kb_per_min": round(slope_kb_per_min(steady), 2),
        "rss_slope_first_half_kb_per_min": round(slope_kb_per_min([p for p in steady if p[0] <= mid]), 2),
        "rss_slope_second_half_kb_per_min": round(slope_kb_per_min([p for p in steady if p[0] >= mid]), 2),
        "same_pid": rig.fwd.alive() and rig.fwd.pid == rig.pid,
    }


def passed(f: dict) -> bool:
    """A forwarder passes: same process, no garbage or foreign frames, in order, RSS flat (|slope| < 100 KB/min)."""
    ok = f["same_pid"] and f["garbage_bytes"] == 0 and f["foreign"] == 0 and f["in_order"]
    return ok and abs(f["rss_slope_kb_per_min"]) < 100


def write_results(out: Path, rows: list[dict], summary: dict) -> None:
    if rows:
        with (out / "soak.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--dir", default=str(REPO / ".build" / "soak"))
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)  # noqa: S311 - fault schedule, not crypto
    rnd = random.Random(seed)  # noqa: S311 - fault schedule, not crypto
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pp-soak-"))

    pki = PKI(work / "pki")
    broker = Mosquitto(pki, work / "broker").start()
    lab_password = "soak-Ntrip-Pw-5"  # noqa: S105 - the lab caster's own password
    caster = Caster(work / "caster", user="soak", password=lab_password, pki=pki).start()
    rx = {"mqtt": ReceiverSim(work / "ttyMQTT").start(), "ntrip": ReceiverSim(work / "ttyNTRIP").start()}
    replayer = MqttReplayer(broker).connect()
    svc = Services(broker, caster, replayer, lab_keys())
    replayer.publish_keys(svc.keys)
    rigs: dict[str, Rig] = {}
    faults: list[dict] = []
    rows: list[dict] = []
    t_start = time.monotonic()
    try:
        for name in ("mqtt", "ntrip"):
            rigs[name] = start_rig(name, work / name, rx[name], svc)
        t_start = time.monotonic()
        soak(rigs, svc, rnd, t_start, args.minutes, rows=rows, faults=faults)
        time.sleep(3)
    finally:
        for rig in rigs.values():
            rig.traffic.stop()
        summary = {"minutes_requested": args.minutes, "seed": seed, "forwarders": {}, "faults": faults}
        ok = all(f["recovery_s"] is not None for f in faults)
        for rig in rigs.values():
            summary["forwarders"][rig.name] = forwarder_summary(rig, rows)
            ok = ok and passed(summary["forwarders"][rig.name])
        summary["minutes_run"] = round((time.monotonic() - t_start) / 60, 2)
        summary["ok"] = ok
        for rig in rigs.values():
            rig.fwd.stop()
            shutil.copy(rig.fwd.log_path, out / f"forwarder-{rig.name}.log")
        replayer.stop()
        caster.stop()
        broker.stop()
        for r in rx.values():
            r.close()
        write_results(out, rows, summary)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
