"""Command line entry point `pointperfect-forwarder`: run the daemon or check its configuration."""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__, config
from .app import Forwarder, install_signals
from .redact import RedactFilter
from .region import candidate

EXIT_OK = 0
EXIT_CONFIG = 2
__all__ = ["RedactFilter", "main"]


def subscriptions(s: config.Settings) -> str:
    """`--check-config`: the region decision and the MQTT topics it leads to (empty for NTRIP)."""
    m = s.mqtt
    if m is None:
        return ""
    topics = [t for t in (m.key_topic, m.assistnow_topic, m.frequencies_topic) if t]
    fp = s.fixed_position
    if s.lband_mode == "keys_only":
        return f" L-band keys only (no lband.device) topics {', '.join(topics)}"
    if s.lband_mode == "d9s":
        region = f"region {s.region} (mqtt.region)" if s.region else "region auto (frequency table + position)"
        return f" {region} topics {', '.join(topics)}; NEO-D9S {s.lband['device']} (RXM-PMP on {s.lband['port']})"
    plan = [r for r in s.regions if r in m.corrections] or sorted(m.corrections)
    if s.region:
        region, chosen = f"region {s.region} (mqtt.region)", m.corrections[s.region]
    elif len(plan) == 1:
        region, chosen = f"region {plan[0]} (the plan's only region)", m.corrections[plan[0]]
    else:
        start = f"; fixed_position gives {candidate(fp['lat'], fp['lon'], plan)}" if fp else ""
        region, chosen = f"region auto ({', '.join(plan)}: from the receiver position{start})", None
    if chosen:
        return f" {region} topics {', '.join([*topics, chosen])}"
    return f" {region} topics {', '.join(topics) or '-'} + 1 correction topic once a region is chosen"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pointperfect-forwarder",
        description="Forward u-blox PointPerfect corrections (MQTT or NTRIP) and dynamic keys to a GNSS receiver. "
        "Only a bad configuration ends the process (exit 2); network and port faults are retried.",
    )
    p.add_argument(
        "-c",
        "--config",
        default=config.DEFAULT_CONFIG_PATH,
        help=f"forwarder config file (JSON, default {config.DEFAULT_CONFIG_PATH})",
    )
    p.add_argument(
        "--check-config",
        action="store_true",
        help="validate the config and the credentials it names, print a one-line summary, exit 0 or 2",
    )
    p.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="override log_level from the config"
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = config.load(args.config)
    except config.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_CONFIG
    if args.log_level:
        settings.log_level = args.log_level
    if args.check_config:
        print(
            f"config ok: {settings.input} {settings.input_endpoint()}{subscriptions(settings)} -> "
            f"{settings.output['type']} {settings.output_target()}, keys {len(settings.keys)}, receiver configure "
            f"{'on' if settings.receiver['configure'] else 'off'}"
        )
        return EXIT_OK
    redact = RedactFilter()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redact)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("paho").setLevel(logging.WARNING)
    fwd = Forwarder(settings, redactor=redact)
    install_signals(fwd)
    return fwd.run()


if __name__ == "__main__":
    sys.exit(main())
