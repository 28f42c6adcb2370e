"""Command line: `python -m pointperfect_sim serve|lab|export` (no subcommand starts the lab, for `make demo`)."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from . import profiles as prof
from .pki import PKI
from .server import serve


def _serve(args) -> int:
    profiles = prof.load(args.profiles) if args.profiles else None
    return serve(args.state_dir, profiles, host=args.host, port=args.port, verbose=not args.quiet)


def _export(args) -> int:
    """Write ca.pem + server.pem/server.key (SAN = --names) from the state dir's PKI, for a broker or caster."""
    pki = PKI(Path(args.state_dir) / "pki")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cert, key = pki.issue_server(tuple(args.names), days=args.days)
    shutil.copyfile(pki.ca_path, out / "ca.pem")
    shutil.copyfile(cert, out / "server.pem")
    shutil.copyfile(key, out / "server.key")
    (out / "server.key").chmod(0o600)
    print(f"wrote {out / 'ca.pem'}, {out / 'server.pem'}, {out / 'server.key'}")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] == "lab":
        from . import lab  # noqa: PLC0415 - written separately, imported only when asked for

        return lab.main(argv[1:]) or 0
    parser = argparse.ArgumentParser(prog="pointperfect-sim", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the ZTP API simulator in the foreground")
    s.add_argument("--state-dir", required=True, help="PKI, devices.json and endpoint.json live here")
    s.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=0, help="0 = any free port (see endpoint.json)")
    s.add_argument("--profiles", help="JSON file {token: profile}; default: the demo profiles")
    s.add_argument("--quiet", action="store_true", help="no access log")
    s.set_defaults(func=_serve)
    e = sub.add_parser("export", help="write the CA and a server cert/key for a broker or caster")
    e.add_argument("--state-dir", required=True, help="simulator state dir whose PKI to use")
    e.add_argument("--out", required=True, help="directory for ca.pem, server.pem, server.key")
    e.add_argument("--names", nargs="+", default=["127.0.0.1", "localhost"], help="SAN entries")
    e.add_argument("--days", type=int, default=825)
    e.set_defaults(func=_export)
    sub.add_parser("lab", help="start the lab (broker, caster, replayers); see pointperfect_sim.lab")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
