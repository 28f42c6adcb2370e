#!/usr/bin/env python
"""Copies the forwarder's /metrics (served on 127.0.0.1 only, the role's default) into node_exporter's textfile
collector directory, so that the node_exporter Prometheus already scrapes carries them; nothing new listens.

    pointperfect-metrics-textfile.py [--url URL] [--dir DIR] [--name NAME]

Run by pointperfect-metrics-textfile.timer every 15 s. The file is replaced atomically (node_exporter never reads half
a file). When the forwarder does not answer, the file holds only `pointperfect_forwarder_up 0`, so a stopped forwarder
shows as down instead of as its last values. Python 3 standard library only.
"""

import argparse
import os
import sys
import tempfile
import urllib.request

DOWN = (
    "# HELP pointperfect_forwarder_up The forwarder process is running.\n"
    "# TYPE pointperfect_forwarder_up gauge\n"
    "pointperfect_forwarder_up 0\n"
)


def fetch(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (a local http URL by design)
        text = response.read().decode("utf-8")
    if "pointperfect_forwarder_up" not in text:
        raise ValueError(f"{url} serves no pointperfect_forwarder_ metrics")
    return text if text.endswith("\n") else text + "\n"


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pointperfect-", suffix=".tmp")  # not *.prom: not collected
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="pointperfect-metrics-textfile")
    ap.add_argument("--url", default="http://127.0.0.1:9661/metrics")
    ap.add_argument("--dir", default="/var/lib/prometheus/node-exporter", help="--collector.textfile.directory")
    ap.add_argument("--name", default="pointperfect.prom")
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args(argv)
    try:
        text, status = fetch(args.url, args.timeout), 0
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        print(f"pointperfect-metrics-textfile: {args.url}: {exc}; writing pointperfect_forwarder_up 0", file=sys.stderr)
        text, status = DOWN, 0  # the file says "down"; the unit itself did its job
    write_atomically(os.path.join(args.dir, args.name), text)
    return status


if __name__ == "__main__":
    sys.exit(main())
