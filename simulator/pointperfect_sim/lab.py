"""The lab: the real broker (broker.py) and caster (caster.py) with replayers publishing what PointPerfect publishes,
and the dynamic keys they serve.

`python -m pointperfect_sim lab up --dir DIR` runs them in the foreground and writes DIR/lab.json (`make demo`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from .broker import Mosquitto
from .caster import Caster
from .proc import write_atomic

KEY_PERIOD_MS = 2419200000  # a dynamic key's validity: 4 weeks


def lab_keys(now_ms: int | None = None, seed: int = 0) -> dict:
    """The lab's dynamic keys: the current and next 4-week periods around `now_ms` (default now), with recognisable
    values (c0ffee00..., beefcafe...); another `seed` gives other values, as a key rotation does."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    start = now_ms - now_ms % KEY_PERIOD_MS
    return {
        name: {"start": start + i * KEY_PERIOD_MS, "duration": KEY_PERIOD_MS - 1, "value": f"{base + seed:08x}" * 4}
        for i, (name, base) in enumerate((("current", 0xC0FFEE00), ("next", 0xBEEFCAFE)))
    }


def lab_up(args: argparse.Namespace) -> int:
    from .pki import PKI  # noqa: PLC0415 - the PKI module is only needed when the lab really runs
    from .replay import CasterFeeder, MqttReplayer, plan_topics  # noqa: PLC0415

    base = Path(args.dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    pki = PKI(Path(args.pki).resolve() if args.pki else base / "pki")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    keys = json.loads(Path(args.keys).read_text()) if args.keys else lab_keys()
    if "dynamickeys" in keys:
        keys = keys["dynamickeys"]
    broker = Mosquitto(pki, base / "broker", args.mqtt_port or None)
    caster = Caster(
        base / "caster",
        args.ntrip_port or None,
        args.ntrip_tls_port or None,
        args.mountpoint,
        args.user,
        args.password,
        pki,
    )
    replayer = feeder = None
    try:
        broker.start()
        caster.start()
        topics = plan_topics(args.plan, args.region)
        replayer = MqttReplayer(broker, topics).connect()
        replayer.publish_keys(keys)
        replayer.publish_frequencies()
        if topics["corrections"]:
            replayer.start_stream(capture=args.capture, loop=True)
        feeder = CasterFeeder(caster).start(capture=args.capture, loop=True)
        info = {
            "pid": os.getpid(),
            "pki": str(pki.dir),
            "ca": str(pki.ca_path),
            "broker": broker.info(),
            "caster": caster.info(),
            "topics": topics,
            "dynamickeys": keys,
            "capture": args.capture,
        }
        write_atomic(base / "lab.json", json.dumps(info, indent=2, sort_keys=True) + "\n", 0o644)
        print(f"lab up: mqtts://127.0.0.1:{broker.port} ntrip://127.0.0.1:{caster.port} (tls {caster.tls_port})")
        sys.stdout.flush()
        while not stop.wait(1.0):
            if not broker._proc.alive() or not caster._str2str.alive():
                print("lab: a child process died", file=sys.stderr)
                return 1
        return 0
    finally:
        for part in (feeder, replayer):
            if part is not None:
                part.stop()
        caster.stop()
        broker.stop()
        with contextlib.suppress(FileNotFoundError):
            (base / "lab.json").unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pointperfect_sim lab", description="real broker + caster + replayers")
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="run the lab in the foreground until SIGTERM/SIGINT")
    up.add_argument("--dir", default=os.environ.get("PP_LAB_DIR", ".lab"), help="work dir; lab.json is written here")
    up.add_argument("--pki", help="PKI directory to share with the ZTP simulator (default DIR/pki)")
    up.add_argument("--capture", help="SPARTN capture to replay instead of synthetic frames")
    up.add_argument("--keys", help="JSON file with dynamickeys (default: generated lab keys)")
    up.add_argument("--region", default="eu")
    up.add_argument("--plan", default="ip", choices=("ip", "ip+lband", "lband"), help="MQTT topic names to replay")
    up.add_argument("--mqtt-port", type=int, default=0)
    up.add_argument("--ntrip-port", type=int, default=0)
    up.add_argument("--ntrip-tls-port", type=int, default=0)
    up.add_argument("--mountpoint", default="NEAR-SPARTN")
    up.add_argument("--user", default="lab")
    up.add_argument("--password", default="lab-password")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv or ["up"])  # no subcommand: start the lab (make demo)
    if args.cmd == "up":
        return lab_up(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
