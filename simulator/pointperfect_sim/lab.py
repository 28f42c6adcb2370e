"""The lab: a real Mosquitto broker (mutual TLS, ACL) and a real RTKLIB NTRIP caster (str2str behind a gate that
behaves like PointPerfect's caster, and stunnel for TLS).

`python -m pointperfect_sim lab up --dir DIR` runs both plus replayers in the foreground and writes DIR/lab.json.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
STR2STR = shutil.which("str2str")
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
PUBLISHER_CN = "pp-replayer"
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------- process helpers


def free_port() -> int:
    """An ephemeral loopback port that is free right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, host: str = LOOPBACK, proc: subprocess.Popen | None = None) -> None:
    """Wait until host:port accepts TCP connections (fails early if `proc` exits)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args[0]} exited with {proc.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
        time.sleep(0.05)


class Proc:
    """A child process with its output in a log file; stop() = SIGTERM, wait, SIGKILL if needed."""

    def __init__(self, argv: list[str], log_path: Path, cwd: Path | None = None) -> None:
        self.argv = argv
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed right after
        try:
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self.popen = None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""


def _write_private(path: Path, data: str | bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


# ---------------------------------------------------------------- Mosquitto


class Mosquitto:
    """Real mosquitto on 127.0.0.1:port with mutual TLS against the PKI's CA.

    Any PKI-issued client (identity = certificate CN) may read `/pp/#` and `pp/#`; only the publisher identity
    `pp-replayer` may write there. Persistence off; log in workdir/mosquitto.log.
    """

    def __init__(self, pki, workdir, port: int | None = None) -> None:
        self.pki = pki
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
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
        return _write_private(cdir / f"{safe}.crt", cert_pem, 0o644), _write_private(cdir / f"{safe}.key", key_pem)

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
                _write_private(self.workdir / "broker.crt", Path(cert).read_bytes(), 0o644),
                _write_private(self.workdir / "broker.key", Path(key).read_bytes()),
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
        if MOSQUITTO is None:
            raise RuntimeError("mosquitto is not installed")
        self._write_config()
        self.publisher_tls()
        self._proc = Proc([MOSQUITTO, "-c", str(self.conf_path)], self.workdir / "mosquitto.out").start()
        try:
            self._wait_tls(timeout)
        except Exception:
            self.stop()
            raise
        return self

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


# ---------------------------------------------------------------- Caster

# The gate's answer to a second concurrent session of one user. ARK-Electronics/pointperfect-client-mavlink README.md:
# "Each Thing allows a single simultaneous NTRIP connection" (the real status code is not published; 409 is ours).
CONFLICT_BODY = b"Conflict: this user already has an NTRIP connection\r\n"
CONFLICT_RESPONSE = (
    b"HTTP/1.1 409 Conflict\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    + f"Content-Length: {len(CONFLICT_BODY)}\r\n\r\n".encode()
    + CONFLICT_BODY
)
HEAD_LIMIT = 8192  # request/response head bytes the gate reads at most
HEAD_TIMEOUT = 10.0  # s a client (or str2str) has to send its head
MAX_CONNECTIONS = 32  # concurrent connections the gate serves; more are closed at once
RELEASE_GRACE = 0.5  # s a new session waits for the same user's old one to notice its client has gone


def _nmea_ok(text: str, checksum: str) -> bool:
    value = 0
    for ch in text.encode("ascii"):
        value ^= ch
    return f"{value:02X}" == checksum.upper()


def gga_valid(line: bytes | str) -> bool:
    """A GGA sentence with a correct NMEA checksum, a position and fix quality > 0: what the caster waits for."""
    if isinstance(line, bytes):
        line = line.decode("ascii", errors="replace")
    line = line.strip()
    if not line.startswith("$") or "*" not in line:
        return False
    body, _, checksum = line[1:].rpartition("*")
    fields = body.split(",")
    if len(fields) < 7 or len(fields[0]) != 5 or not fields[0].endswith("GGA"):
        return False
    if not _nmea_ok(body, checksum[:2]) or not all(fields[2:6]):
        return False
    try:
        return int(fields[6]) > 0
    except ValueError:
        return False


def _read_until(sock: socket.socket, marker: bytes, limit: int = HEAD_LIMIT) -> tuple[bytes, bytes] | None:
    """Bytes up to and including `marker`, and what was read after it; None on EOF, timeout or an oversized head."""
    buf = b""
    while marker not in buf:
        if len(buf) > limit:
            return None
        try:
            chunk = sock.recv(4096)
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    end = buf.index(marker) + len(marker)
    return buf[:end], buf[end:]


def _drain(sock: socket.socket, timeout: float = 1.0) -> None:
    """Half-close and read until the peer closes, so an answer is not lost to a reset over unread input."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(timeout)
        while sock.recv(4096) and time.monotonic() < deadline:
            pass


class NtripGate:
    """A TCP gate in front of str2str that makes the lab caster behave like PointPerfect's.

    It relays each request and the response head, then:
    - sends the client nothing of the correction stream until the client has sent a valid GGA (NMEA checksum ok,
      quality > 0); stream bytes before that are dropped (`dropped_before_gga`). ARK-Electronics/
      pointperfect-client-mavlink README.md: "the caster starts the correction stream only after it receives a valid
      GGA". `connect_burst` bytes (e.g. UBX-MGA for a -MGA mountpoint, same README: AssistNow "once, immediately on
      connection, ahead of the correction stream") go out right after the response head, before any GGA;
    - refuses a second concurrent session of the same user with `HTTP/1.1 409 Conflict` (same README: "Each Thing
      allows a single simultaneous NTRIP connection"); a session counts from its 200 answer until either side closes.
    Wrong credentials and source-table requests pass through to str2str unchanged. Loopback only, bounded threads.
    """

    def __init__(
        self,
        port: int,
        upstream_port: int,
        user: str,
        password: str,
        *,
        require_gga: bool = True,
        connect_burst: bytes | None = None,
    ) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self.user = user
        self.password = password
        self.require_gga = require_gga
        self.connect_burst = connect_burst
        self.sessions_total = 0  # 200 answers relayed
        self.conflicts = 0  # 409 answers given
        self.dropped_before_gga = 0  # stream bytes dropped because the client had not sent a valid GGA yet
        self._cond = threading.Condition()
        self._active: set[str] = set()
        self._conns: dict[int, list[socket.socket]] = {}  # per serving thread: its sockets (stop() shuts them)
        self._threads: set[threading.Thread] = set()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None

    def start(self) -> NtripGate:
        self._stop.clear()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, self.port))
            sock.listen(16)
        except OSError:
            sock.close()
            raise
        sock.settimeout(0.2)
        self._listener = sock
        self._acceptor = threading.Thread(target=self._accept_loop, name="ntrip-gate", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            conns = [list(socks) for socks in self._conns.values()]
        for socks in conns:
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
            self._acceptor = None
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def active_users(self) -> list[str]:
        """Users holding a session right now."""
        with self._cond:
            return sorted(self._active)

    # ----- plumbing

    def _accept_loop(self) -> None:
        listener = self._listener
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                busy = len(self._threads) >= MAX_CONNECTIONS
            if busy:
                client.close()
                continue
            thread = threading.Thread(target=self._serve, args=(client,), name="ntrip-gate-conn", daemon=True)
            with self._cond:
                self._threads.add(thread)
            thread.start()

    def _session_user(self, head: bytes) -> str | None:
        """The user when `head` asks for a mountpoint with this caster's credentials, else None."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) < 2 or parts[0] != "GET" or not parts[1].lstrip("/"):
            return None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "authorization":
                scheme, _, token = value.strip().partition(" ")
                if scheme.lower() != "basic":
                    return None
                try:
                    user, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    return None
                return user if (user, password) == (self.user, self.password) else None
        return None

    def _claim(self, user: str) -> bool:
        """Take the user's single session slot; waits RELEASE_GRACE for an old session whose client just left."""
        with self._cond:
            if not self._cond.wait_for(lambda: user not in self._active or self._stop.is_set(), RELEASE_GRACE):
                return False
            if self._stop.is_set():
                return False
            self._active.add(user)
            return True

    def _release(self, user: str | None) -> None:
        if user is None:
            return
        with self._cond:
            self._active.discard(user)
            self._cond.notify_all()

    def _serve(self, client: socket.socket) -> None:
        socks = [client]  # + the upstream socket once connected
        with self._cond:
            self._conns[threading.get_ident()] = socks
        user = None
        try:
            client.settimeout(HEAD_TIMEOUT)
            got = _read_until(client, b"\r\n\r\n")
            if got is None:
                return
            head, extra = got
            user = self._session_user(head)
            if user is not None and not self._claim(user):
                user = None
                with self._cond:
                    self.conflicts += 1
                client.sendall(CONFLICT_RESPONSE)
                _drain(client)
                return
            upstream = socket.create_connection((LOOPBACK, self.upstream_port), timeout=HEAD_TIMEOUT)
            socks.append(upstream)
            upstream.sendall(head)
            got = _read_until(upstream, b"\r\n")
            if got is None:
                return
            status, rest = got
            stream = status.startswith(b"ICY 200") or (
                status.startswith(b"HTTP/") and status.split(b" ", 2)[1:2] == [b"200"]
            )
            if stream and status.startswith(b"HTTP/"):  # an NTRIP rev2 answer: a whole header block
                buf = status + rest
                while b"\r\n\r\n" not in buf and len(buf) <= HEAD_LIMIT:
                    chunk = upstream.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                status, rest = buf[: end + 4], buf[end + 4 :]
            if not stream:
                self._release(user)
                user = None
            else:
                with self._cond:
                    self.sessions_total += 1
            client.sendall(status)
            if stream and self.connect_burst:
                client.sendall(self.connect_burst)
            client.settimeout(None)
            upstream.settimeout(None)
            self._pump(client, upstream, extra, rest, gated=stream and self.require_gga)
        except OSError:
            return
        finally:
            self._release(user)
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._cond:
                self._conns.pop(threading.get_ident(), None)
                self._threads.discard(threading.current_thread())

    def _pump(self, client: socket.socket, upstream: socket.socket, extra: bytes, rest: bytes, gated: bool) -> None:
        """Relay both ways until either side closes; stream bytes reach the client only after a valid GGA."""
        pending = b""  # the client's unfinished NMEA line

        def from_client(data: bytes) -> None:
            nonlocal gated, pending
            if gated:  # open the gate before str2str (and so `Caster.gga()`) sees the GGA
                lines = (pending + data).split(b"\n")
                pending = lines.pop()[-HEAD_LIMIT:]
                if any(gga_valid(line) for line in lines):
                    gated = False
            upstream.sendall(data)

        def from_upstream(data: bytes) -> None:
            if gated:
                with self._cond:
                    self.dropped_before_gga += len(data)
            else:
                client.sendall(data)

        if extra:
            from_client(extra)
        if rest:
            from_upstream(rest)
        while not self._stop.is_set():
            ready, _, _ = select.select([client, upstream], [], [], 0.2)
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                (from_client if sock is client else from_upstream)(data)


class Caster:
    """RTKLIB str2str as NTRIP caster (`ntripc`) fed through a TCP server input, behind an `NtripGate`, with stunnel
    for TLS: clients connect to the gate (`port`, plain) or to stunnel (`tls_port`), which forwards to the gate; str2str
    listens on an internal port (`upstream_port`).

    - `feed(data)`: bytes written to str2str's input (`tcpsvr`) go out byte-exact to every connected NTRIP client that
      has sent a valid GGA (the gate drops what comes before; `require_gga=False` turns that off).
    - One session per user at a time: a second concurrent one gets `HTTP/1.1 409 Conflict` (see NtripGate).
    - str2str runs with `-b 1`, which relays what clients send to the caster (their GGA) back into the input stream;
      the feeder socket reads it, so `client_bytes` / `gga()` show exactly what clients sent.
    - str2str (RTKLIB 2.4.3 b34) accepts NTRIP rev1 (HTTP/1.0) and rev2 (HTTP/1.1 + Ntrip-Version) requests and
      answers both with `ICY 200 OK\\r\\n` (no chunked encoding, no further head); wrong credentials get
      `HTTP/1.0 401 Unauthorized`; `GET /` returns the source table. It serves exactly one mountpoint.
    - str2str binds its ports on all interfaces (its URL syntax has no bind address); the gate and stunnel bind
      127.0.0.1.
    """

    def __init__(  # noqa: PLR0917 - positional order is Contract 6
        self,
        workdir,
        port: int | None = None,
        tls_port: int | None = None,
        mountpoint: str = "NEAR-SPARTN",
        user: str = "user",
        password: str = "pass",  # noqa: S107 - lab credentials
        pki=None,
        *,
        require_gga: bool = True,
        connect_burst: bytes | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.tls_port = tls_port or (free_port() if pki is not None else None)
        self.upstream_port = free_port()
        self.feed_port = free_port()
        self.mountpoint = mountpoint
        self.user = user
        self.password = password
        self.pki = pki
        self.host = LOOPBACK
        self.require_gga = require_gga
        self.connect_burst = connect_burst
        self.gate: NtripGate | None = None
        self._str2str: Proc | None = None
        self._stunnel: Proc | None = None
        self._feed: socket.socket | None = None
        self._feed_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._client = bytearray()
        self._client_lock = threading.Lock()
        self.fed_bytes = 0

    @property
    def ca_path(self) -> Path | None:
        return Path(self.pki.ca_path) if self.pki is not None else None

    def start(self, timeout: float = 10.0) -> Caster:
        if STR2STR is None:
            raise RuntimeError("str2str (rtklib) is not installed")
        out = f"ntripc://{self.user}:{self.password}@:{self.upstream_port}/{self.mountpoint}"
        argv = [STR2STR, "-in", f"tcpsvr://:{self.feed_port}", "-out", out, "-b", "1"]
        self._str2str = Proc(argv, self.workdir / "str2str.log", cwd=self.workdir).start()
        try:
            self._connect_feed(timeout)
            self._wait_caster(self.upstream_port, timeout)
            self.gate = NtripGate(
                self.port,
                self.upstream_port,
                self.user,
                self.password,
                require_gga=self.require_gga,
                connect_burst=self.connect_burst,
            ).start()
            self._wait_caster(self.port, timeout)
            if self.pki is not None:
                self._start_stunnel(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def _connect_feed(self, timeout: float) -> None:
        wait_port(self.feed_port, timeout, proc=self._str2str.popen)
        self._feed = socket.create_connection((LOOPBACK, self.feed_port), timeout=5)
        self._feed.settimeout(None)
        self._reader = threading.Thread(target=self._read_back, args=(self._feed,), name="caster-feed", daemon=True)
        self._reader.start()

    def _wait_caster(self, port: int, timeout: float) -> None:
        """Ready = a source-table request on `port` is answered."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1) as sock:
                sock.sendall(b"GET / HTTP/1.0\r\nUser-Agent: NTRIP lab-probe\r\n\r\n")
                if sock.recv(64).startswith(b"SOURCETABLE 200"):
                    return
            if not self._str2str.alive():
                raise RuntimeError(f"str2str exited: {self._str2str.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"caster not ready on {port}")
            time.sleep(0.1)

    def _start_stunnel(self, timeout: float) -> None:
        if STUNNEL is None:
            raise RuntimeError("stunnel is not installed")
        cert, key = self.pki.issue_server((LOOPBACK, "localhost"))
        cert = _write_private(self.workdir / "caster.crt", Path(cert).read_bytes(), 0o644)
        key = _write_private(self.workdir / "caster.key", Path(key).read_bytes())
        conf = self.workdir / "stunnel.conf"
        conf.write_text(
            "foreground = yes\npid =\n"
            f"output = {self.workdir / 'stunnel.log'}\ndebug = notice\n"
            "[ntrip]\n"
            f"accept = {LOOPBACK}:{self.tls_port}\nconnect = {LOOPBACK}:{self.port}\n"
            f"cert = {cert}\nkey = {key}\nsslVersionMin = TLSv1.2\n"
        )
        self._stunnel = Proc([STUNNEL, str(conf)], self.workdir / "stunnel.out").start()
        wait_port(self.tls_port, timeout, proc=self._stunnel.popen)

    def _read_back(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._client_lock:
                self._client += data

    def feed(self, data: bytes) -> None:
        """Push correction bytes into the caster (delivered to clients connected right now that sent a GGA)."""
        if self._feed is None:
            raise RuntimeError("caster not started")
        with self._feed_lock:
            self._feed.sendall(data)
            self.fed_bytes += len(data)

    @property
    def client_bytes(self) -> bytes:
        """Everything NTRIP clients sent after their request (e.g. GGA), as str2str relayed it."""
        with self._client_lock:
            return bytes(self._client)

    def gga(self) -> list[str]:
        """The GGA sentences clients sent, in order."""
        text = self.client_bytes.decode("ascii", errors="replace")
        return [line for line in re.findall(r"\$[A-Z]{2}GGA[^\r\n]*", text)]

    def wait_gga(self, count: int = 1, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.gga()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.gga()

    def clear_client_bytes(self) -> None:
        with self._client_lock:
            self._client.clear()

    @property
    def conflicts(self) -> int:
        """409 answers the gate gave (second concurrent session of one user)."""
        return self.gate.conflicts if self.gate else 0

    @property
    def dropped_before_gga(self) -> int:
        """Stream bytes not sent because the client had not sent a valid GGA yet."""
        return self.gate.dropped_before_gga if self.gate else 0

    def active_users(self) -> list[str]:
        """Users with a session open right now."""
        return self.gate.active_users() if self.gate else []

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.stop()
            self.gate = None
        if self._feed is not None:
            with contextlib.suppress(OSError):
                self._feed.shutdown(socket.SHUT_RDWR)
            self._feed.close()
            self._feed = None
        for proc in (self._stunnel, self._str2str):
            if proc is not None:
                proc.stop()
        self._stunnel = self._str2str = None
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None

    def restart(self) -> None:
        """Stop and start on the same ports (clients see the caster go away)."""
        self.stop()
        self.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in (self._str2str, self._stunnel) if p is not None and p.pid]

    def __enter__(self) -> Caster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def info(self) -> dict:
        return {
            "host": LOOPBACK,
            "port": self.port,
            "tls_port": self.tls_port,
            "mountpoint": self.mountpoint,
            "username": self.user,
            "password": self.password,
            "ca": str(self.ca_path) if self.ca_path else None,
        }


# ---------------------------------------------------------------- forwarder under test


class ForwarderDaemon:
    """`python -m pointperfect_forwarder -c CONFIG` as a child process (optionally behind a prefix such as
    `ip netns exec NS`), its output in forwarder.log beside the config; status from the config's status file."""

    status_timeout = 20.0  # default wait for a status condition, s
    stop_timeout = 10.0  # default wait for a clean exit after SIGTERM, s

    def __init__(self, config: Path, env: dict | None = None, prefix=()):
        self.config = Path(config)
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


# ---------------------------------------------------------------- lab up


def lab_keys(now_ms: int | None = None) -> dict:
    """Deterministic demo keys: the current and next 4-week periods (value derived from the period number)."""
    period = 2419200000
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    start = now_ms - now_ms % period
    return {
        name: {"start": start + i * period, "duration": period - 1, "value": f"{(start // period + i) * 7919:032x}"}
        for i, name in enumerate(("current", "next"))
    }


LAB_PLANS = ("ip", "ip+lband", "lband", "ntrip")


def plan_topics(plan: str, regions=("eu",)) -> dict:
    """Contract 1 `topics` of a plan: key topic, region -> top-level correction topic, AssistNow, frequencies.
    Topic names as u-blox/XPLR-HPG-software XPLR-HPG-SW/bin/emuZtpResponse.json and
    sparkfun/SparkFun_RTK_Everywhere_Firmware Firmware/RTK_Everywhere/HTTP_Client.ino show them."""
    if plan not in LAB_PLANS:
        raise ValueError(f"plan must be one of {LAB_PLANS}, not {plan!r}")
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
        "topics": plan_topics(plan, regions),
        "ntrip": None,
        "dynamickeys": keys,
    }
    if mqtt:
        cert_pem, key_pem = broker.pki.issue_client(cn, 365)
        _replace(folder / "client.crt", cert_pem, 0o644)
        _replace(folder / "client.key", key_pem, 0o600)
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
    _replace(path, json.dumps(creds, indent=2, sort_keys=True) + "\n", 0o600)
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


def _replace(path: Path, data: str | bytes, mode: int) -> None:
    """Write `data` to `path` atomically (temp file with the final mode, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


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
        _atomic_json(
            base / "lab.json",
            {
                "pid": os.getpid(),
                "pki": str(pki.dir),
                "ca": str(pki.ca_path),
                "broker": broker.info(),
                "caster": caster.info(),
                "topics": topics,
                "dynamickeys": keys,
                "capture": args.capture,
            },
        )
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
