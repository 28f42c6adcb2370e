"""The lab's MQTT broker: a real Mosquitto on loopback with mutual TLS against the simulator's PKI and an ACL."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import time
from pathlib import Path

from .proc import LOOPBACK, Proc, free_port, port_taken, stopped_on_error, write_atomic

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
PUBLISHER_CN = "pp-replayer"


class Mosquitto:
    """Real mosquitto on 127.0.0.1:port with mutual TLS against the PKI's CA.

    Any PKI-issued client (identity = certificate CN) may read `/pp/#` and `pp/#`; only the publisher identity
    `pp-replayer` may write there. Persistence off; log in workdir/mosquitto.log.
    """

    def __init__(self, pki, workdir, port: int | None = None) -> None:
        self.pki = pki
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port_chosen = not port  # chosen here: another one may be chosen if it is taken before the first bind
        self.port = port or free_port()
        self.host = LOOPBACK
        self.conf_path = self.workdir / "mosquitto.conf"
        self.acl_path = self.workdir / "mosquitto.acl"
        self.log_path = self.workdir / "mosquitto.log"
        self._proc: Proc | None = None
        self._publisher: tuple[Path, Path] | None = None
        self._server: tuple[Path, Path] | None = None

    @property
    def ca_path(self) -> Path:
        return Path(self.pki.ca_path)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def issue_device(self, cn: str, days: float = 365) -> tuple[Path, Path]:
        """A PKI client cert for a device that does not go through ZTP; returns (cert_path, key_path) in workdir."""
        cert_pem, key_pem = self.pki.issue_client(cn, days)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", cn)
        cdir = self.workdir / "clients"
        cdir.mkdir(exist_ok=True)
        return write_atomic(cdir / f"{safe}.crt", cert_pem, 0o644), write_atomic(cdir / f"{safe}.key", key_pem)

    def publisher_tls(self) -> dict:
        """Paths for the replayer identity: {"ca", "cert", "key"}."""
        if self._publisher is None:
            self._publisher = self.issue_device(PUBLISHER_CN)
        return {"ca": str(self.ca_path), "cert": str(self._publisher[0]), "key": str(self._publisher[1])}

    def _write_config(self) -> None:
        if self._server is None:
            cert, key = self.pki.issue_server((LOOPBACK, "localhost"))
            # copies in workdir so the broker reads them whichever user it runs as
            self._server = (
                write_atomic(self.workdir / "broker.crt", Path(cert).read_bytes(), 0o644),
                write_atomic(self.workdir / "broker.key", Path(key).read_bytes()),
            )
        self.acl_path.write_text(
            "# every authenticated device may read the PointPerfect topics\n"
            "pattern read /pp/#\npattern read pp/#\n"
            f"user {PUBLISHER_CN}\ntopic readwrite /pp/#\ntopic readwrite pp/#\n"
        )
        lines = [
            "per_listener_settings false",
            "persistence false",
            "allow_anonymous false",
            f"log_dest file {self.log_path}",
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information",
            "connection_messages true",
            f"acl_file {self.acl_path}",
            f"listener {self.port} {LOOPBACK}",
            f"cafile {self.ca_path}",
            f"certfile {self._server[0]}",
            f"keyfile {self._server[1]}",
            "require_certificate true",
            "use_identity_as_username true",
            "tls_version tlsv1.2",
        ]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # test-only: keep root so workdir files stay readable and writable
        self.conf_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> Mosquitto:
        """Start on self.port. A port this broker chose can be taken before its first start binds it (by the
        ephemeral source port of any outgoing connection): then it chooses another. A restart keeps its port."""
        if MOSQUITTO is None:
            raise RuntimeError("mosquitto is not installed")
        for attempt in range(3):
            try:
                self._start_once(timeout)
            except (RuntimeError, TimeoutError):
                if not self._port_chosen or attempt == 2 or not port_taken(self.port):
                    raise
                self.port = free_port()
            else:
                self._port_chosen = False  # clients know it now
                return self
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        self._write_config()
        self.publisher_tls()
        self._proc = Proc([MOSQUITTO, "-c", str(self.conf_path)], self.workdir / "mosquitto.out").start()
        with stopped_on_error(self):
            self._wait_tls(timeout)

    def _wait_tls(self, timeout: float) -> None:
        """Ready = a TLS handshake with the publisher identity succeeds."""
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        tls = self.publisher_tls()
        ctx.load_cert_chain(tls["cert"], tls["key"])
        deadline = time.monotonic() + timeout
        while True:
            try:
                with (
                    socket.create_connection((LOOPBACK, self.port), timeout=1) as raw,
                    ctx.wrap_socket(raw, server_hostname=LOOPBACK),
                ):
                    return
            except (OSError, ssl.SSLError):
                if not self._proc.alive():
                    raise RuntimeError(f"mosquitto exited: {self._proc.log_tail()} {self._log_tail()}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"mosquitto not ready on {self.port}: {self._log_tail()}") from None
                time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self._proc:
            self._proc.stop()
            self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same port (clients see a broker outage)."""
        self.stop()
        deadline = time.monotonic() + 10
        while True:  # the old listener may linger briefly
            try:
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((LOOPBACK, self.port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.start()

    def log(self) -> str:
        return self._log_tail()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def info(self) -> dict:
        return {"host": LOOPBACK, "port": self.port, "ca": str(self.ca_path), **self.publisher_tls()}
