"""The lab's NTRIP caster: RTKLIB str2str behind a gate that behaves like PointPerfect's caster, stunnel for TLS."""

from __future__ import annotations

import base64
import contextlib
import errno
import re
import select
import shutil
import socket
import threading
import time
from pathlib import Path

from .frames import nmea_checksum
from .proc import LOOPBACK, Proc, free_port, port_taken, stopped_on_error, wait_port, write_atomic

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
STR2STR = shutil.which("str2str")

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
    if nmea_checksum(body) != checksum[:2].upper() or not all(fields[2:6]):
        return False
    try:
        return int(fields[6]) > 0
    except ValueError:
        return False


def _read_until(
    sock: socket.socket, marker: bytes, limit: int = HEAD_LIMIT, buf: bytes = b""
) -> tuple[bytes, bytes] | None:
    """Bytes up to and including `marker` (starting with `buf`, already read), and what was read after it; None on
    EOF, timeout or an oversized head."""
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
        one_session_per_user: bool = True,
    ) -> None:
        self.port, self.upstream_port = port, upstream_port
        self.user, self.password = user, password  # the one account whose sessions are counted and limited
        self.require_gga, self.connect_burst = require_gga, connect_burst
        self.one_session_per_user = one_session_per_user  # False: no 409 (a bench shares the one account)
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
            if user is not None and self.one_session_per_user and not self._claim(user):
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
                got = _read_until(upstream, b"\r\n\r\n", buf=status + rest)
                if got is None:
                    return
                status, rest = got
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
        one_session_per_user: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port_chosen = not port  # chosen here: another one may be chosen if it is taken by the time it is bound
        self.port = port or free_port()
        self.tls_port = tls_port or (free_port() if pki is not None else None)
        self.upstream_port = free_port()
        self.feed_port = free_port()
        # the other ports chosen here, which the first start may choose again (str2str's and stunnel's)
        self._chosen = ("upstream_port", "feed_port") + (("tls_port",) if pki is not None and not tls_port else ())
        self.mountpoint = mountpoint
        self.user = user
        self.password = password
        self.pki = pki
        self.host = LOOPBACK
        self.require_gga = require_gga
        self.connect_burst = connect_burst
        self.one_session_per_user = one_session_per_user
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
        """Start on the ports chosen or given. A port chosen here can be taken before the first start binds it (by
        the ephemeral source port of any outgoing connection): the gate then chooses another at once, str2str and
        stunnel after their start failed. A restart keeps every port (clients know them)."""
        if STR2STR is None:
            raise RuntimeError("str2str (rtklib) is not installed")
        for attempt in range(3):
            try:
                self._start_once(timeout)
            except (RuntimeError, TimeoutError):
                taken = [name for name in self._chosen if port_taken(getattr(self, name))]
                if not taken or attempt == 2:
                    raise
                for name in taken:
                    setattr(self, name, free_port())
            else:
                self._chosen, self._port_chosen = (), False
                return self
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        out = f"ntripc://{self.user}:{self.password}@:{self.upstream_port}/{self.mountpoint}"
        argv = [STR2STR, "-in", f"tcpsvr://:{self.feed_port}", "-out", out, "-b", "1"]
        self._str2str = Proc(argv, self.workdir / "str2str.log", cwd=self.workdir).start()
        with stopped_on_error(self):
            self._connect_feed(timeout)
            self._wait_caster(self.upstream_port, timeout)
            self.gate = self._start_gate()
            self._wait_caster(self.port, timeout)
            if self.pki is not None:
                self._start_stunnel(timeout)

    def _start_gate(self) -> NtripGate:
        """The gate on self.port. A port this caster chose can be taken between the choice and the bind (by the
        ephemeral source port of any outgoing connection, such as the waits above): then it chooses another."""
        for attempt in range(3):
            try:
                return NtripGate(
                    self.port,
                    self.upstream_port,
                    self.user,
                    self.password,
                    require_gga=self.require_gga,
                    connect_burst=self.connect_burst,
                    one_session_per_user=self.one_session_per_user,
                ).start()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or not self._port_chosen or attempt == 2:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

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
        cert = write_atomic(self.workdir / "caster.crt", Path(cert).read_bytes(), 0o644)
        key = write_atomic(self.workdir / "caster.key", Path(key).read_bytes())
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
