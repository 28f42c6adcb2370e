"""NTRIP input: own socket client for rev1 and rev2 (chunked), TLS with verification, Basic auth, periodic GGA.

Follows the caster's rules (pointperfect-facts section 3): no connection before a position exists, the session is kept
through the silence before the first data (the caster sends nothing until it has a valid GGA), UBX-MGA frames of the
-MGA mountpoints are forwarded whole, and one connection per account (a refusal is backed off, not auth_failed)."""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import time

from .. import __version__
from ..config import NtripSettings
from ..framing import RTCM, SPARTN, UBX, Framer
from ..stats import error_text
from . import AUTH_FAILED, Input, tls_context

log = logging.getLogger(__name__)
HEADER_LIMIT = 16384
IO_TIMEOUT = 10.0
RECV_SIZE = 65536
INITIAL_SILENCE = 300.0  # s a session may stay silent before its first data (the caster waits for a valid GGA)
POSITION_POLL = 1.0  # s between checks for a position while waiting for one
GGA_SLACK = 1.0  # s a GGA may go out early or late to ride with data instead of waking the input on its own
WAITING_FOR_POSITION = "waiting for a position fix (no GGA from the receiver and no fixed_position)"
# answers other than 401 that refuse the session; the real caster allows one connection per account
REFUSALS = (403, 409, 429, 503)


class ProtocolError(Exception):
    """The caster answered something this client cannot use."""


class Refused(ProtocolError):
    """The caster refused the session (not for bad credentials): str() is the status line for the user."""


class ChunkedDecoder:
    """Incremental HTTP/1.1 chunked transfer decoding; `done` after the last (zero-size) chunk."""

    def __init__(self):
        self._buf = bytearray()
        self._left = 0  # data bytes left in the current chunk
        self._crlf = False  # a CRLF after chunk data is expected
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf
        buf += data
        out = bytearray()
        while buf and not self.done:
            if self._left:
                take = min(self._left, len(buf))
                out += buf[:take]
                del buf[:take]
                self._left -= take
                if not self._left:
                    self._crlf = True
                continue
            if self._crlf:
                if len(buf) < 2:
                    break
                if buf[:2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                del buf[:2]
                self._crlf = False
                continue
            end = buf.find(b"\r\n")
            if end < 0:
                if len(buf) > 1024:
                    raise ProtocolError("chunk size line too long")
                break
            line = bytes(buf[:end]).split(b";", 1)[0].strip()
            del buf[: end + 2]
            try:
                size = int(line, 16)
            except ValueError:
                raise ProtocolError("bad chunk size") from None
            if size == 0:
                self.done = True
            self._left = size
        return bytes(out)


def build_request(cfg: NtripSettings) -> bytes:
    """The request; every value in it was checked by config (no CR/LF or control character can reach a line)."""
    auth = base64.b64encode(f"{cfg.username}:{cfg.password}".encode()).decode()
    agent = f"NTRIP pointperfect-forwarder/{__version__}"
    if cfg.version == 1:
        lines = [
            f"GET /{cfg.mountpoint} HTTP/1.0",
            f"User-Agent: {agent}",
            f"Authorization: Basic {auth}",
            "Accept: */*",
            "Connection: close",
        ]
    else:
        lines = [
            f"GET /{cfg.mountpoint} HTTP/1.1",
            f"Host: {f'[{cfg.host}]' if ':' in cfg.host else cfg.host}:{cfg.port}",  # an IPv6 literal in brackets
            "Ntrip-Version: Ntrip/2.0",
            f"User-Agent: {agent}",
            f"Authorization: Basic {auth}",
            "Connection: close",
        ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_response(head: bytes, eof: bool = False) -> tuple[int, dict[str, str], bytes] | None:
    """(status, headers, body start) once the response head is complete, else None. Handles ICY and HTTP.

    With `eof` (the caster closed the connection) a head without its blank line is accepted: some casters send just
    `HTTP/1.0 401 Unauthorized` and hang up."""
    if head.startswith(b"ICY "):
        end = head.find(b"\r\n")
        if end < 0:
            return None
        status = head[4:end].split(b" ", 1)[0]
        rest = head[end + 2 :]
        if rest.startswith(b"\r\n"):
            rest = rest[2:]
        return int(status) if status.isdigit() else 0, {}, rest
    end = head.find(b"\r\n\r\n")
    if end < 0:
        if head.startswith(b"SOURCETABLE"):
            return 404, {}, b""
        if not (eof and b"\r\n" in head):
            return None
        end = len(head.rstrip(b"\r\n"))
    lines = head[:end].decode("latin-1").split("\r\n")
    first = lines[0].split(" ", 2)
    if first[0].startswith("SOURCETABLE"):
        return 404, {}, b""
    if len(first) < 2 or not first[0].startswith("HTTP/") or not first[1].isdigit():
        raise ProtocolError(f"not an NTRIP response: {lines[0][:60]!r}")
    headers = {}
    for line in lines[1:]:
        name, _sep, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(first[1]), headers, head[end + 4 :]


class NtripInput(Input):
    kind = "ntrip"
    cfg: NtripSettings

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # UBX: the -MGA mountpoints interleave UBX-MGA (AssistNow) frames with the corrections
        self.framer = Framer((SPARTN, RTCM, UBX), on_garbage=self.stats.garbage)
        self.gga_sent = 0
        self._gga_missing_logged = False
        # one receive buffer for all reads: a fresh 64 KB bytes per recv() fragments the malloc heap (RSS creep)
        self._rx = memoryview(bytearray(RECV_SIZE))

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.cfg.host, self.cfg.port), timeout=IO_TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if self.cfg.tls:
            try:
                sock = tls_context(self.ca_file).wrap_socket(sock, server_hostname=self.cfg.host)
            except BaseException:
                sock.close()
                raise
        sock.settimeout(IO_TIMEOUT)
        return sock

    def _send_gga(self, sock: socket.socket) -> None:
        gga = self.pipeline.gga()
        if gga is None:
            if not self._gga_missing_logged:
                log.warning("ntrip input: no position for GGA (no fix within gga_grace and no fixed_position)")
                self._gga_missing_logged = True
            return
        self._gga_missing_logged = False
        sock.sendall(gga)
        self.gga_sent += 1

    def _wait_for_position(self) -> bool:
        """Block until a GGA exists (True) or the input stops (False): no socket is opened before one exists."""
        waited = False
        while self.pipeline.gga() is None:
            if self.stopping():
                return False
            if not waited:
                self.stats.set_input("waiting_for_position", WAITING_FOR_POSITION)
                log.warning("ntrip input: %s", WAITING_FOR_POSITION)
                waited = True
            self.heartbeat = time.monotonic()
            self._stop.wait(POSITION_POLL)
        if waited:
            log.info("ntrip input: a position is available: connecting")
            self.stats.set_input("connecting")
        return not self.stopping()

    def session(self) -> float | None:
        endpoint = f"{self.cfg.host}:{self.cfg.port}"
        self.framer.reset()
        if not self._wait_for_position():
            return None
        if not self.cfg.tls:
            log.warning(
                "ntrip input: plain TCP to %s: the NTRIP password travels in clear text (ntrip.allow_plain_auth)",
                endpoint,
            )
        try:
            sock = self._connect()
        except ssl.SSLError as exc:
            self.report("connecting", f"TLS error with {endpoint}: {exc.reason or exc}")
            return None
        except OSError as exc:
            self.connect_failed(endpoint, exc)
            return None
        try:
            return self._stream(sock, endpoint)
        except Refused as exc:
            self.stats.set_input("backoff", str(exc))
            log.warning("ntrip input: %s: %s", endpoint, exc)
            return None
        except (OSError, ProtocolError) as exc:
            reason = error_text(exc)
            if self.stats.input_state != "auth_failed":
                self.stats.set_input("backoff", f"{endpoint}: {reason}")
            log.warning("ntrip input: %s: %s", endpoint, reason)
            return None
        finally:
            sock.close()

    def _stream(self, sock: socket.socket, endpoint: str) -> float | None:  # noqa: PLR0912, PLR0915 - the NTRIP response: head, body, GGA, silence
        sock.sendall(build_request(self.cfg))
        head = b""
        while True:
            chunk = sock.recv(4096)
            head += chunk
            parsed = parse_response(head, eof=not chunk)
            if parsed:
                break
            if not chunk:
                raise ProtocolError("connection closed before a response")
            if len(head) > HEADER_LIMIT:
                raise ProtocolError("response header too long")
        status, headers, body = parsed
        if status == 401:
            self.stats.set_input("auth_failed", AUTH_FAILED)
            log.error("ntrip input: %s answered 401: %s", endpoint, AUTH_FAILED)
            return None
        if status == 404:
            raise ProtocolError(f"mountpoint {self.cfg.mountpoint!r} not found (caster sent its source table)")
        if status in REFUSALS:
            raise Refused(f"caster refused the connection ({status}): is another client using this account?")
        if status != 200:
            raise ProtocolError(f"caster answered status {status}")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        decoder = ChunkedDecoder() if chunked else None
        self.stats.set_input("connected")
        self.backoff.session_started()
        log.info(
            "ntrip input: connected to %s mountpoint %s (NTRIP %d%s)",
            endpoint,
            self.cfg.mountpoint,
            self.cfg.version,
            ", TLS" if self.cfg.tls else "",
        )
        started = time.monotonic()
        self._send_gga(sock)
        next_gga = started + self.cfg.gga_interval
        # a GGA rides with the data that wakes the input anyway: up to `slack` early, or late when no data comes
        slack = min(GGA_SLACK, self.cfg.gga_interval / 10)
        data = body
        got_data = False  # the no-data watchdog starts at the session's first data
        data_in, submit = self.stats.data_in, self.pipeline.submit_many
        while not self.stopping():
            if data:
                if decoder is not None:
                    data = decoder.feed(data)
                frames = self.framer.feed(data)
                if frames:
                    for frame in frames:
                        data_in(frame.stream, len(frame.data))
                    submit(frames)  # the frames of one read go out together (one write)
                    got_data = True
                if decoder is not None and decoder.done:
                    raise ProtocolError("caster ended the stream")
            self.heartbeat = now = time.monotonic()
            if now >= next_gga - slack:
                self._send_gga(sock)
                next_gga = now + self.cfg.gga_interval
            if got_data:
                limit, what = self.no_data_timeout, ""
            else:
                limit, what = max(INITIAL_SILENCE, self.no_data_timeout), " since connecting"
            if self.too_silent(started, limit, what, now):
                return None
            # sleep on the socket until data, the next GGA or the no-data watchdog (or a stop)
            wait = min(next_gga + slack - now, self.silence_left(started, limit, now))
            if not self.wait_for(sock, wait)[0]:
                data = b""
                continue
            try:
                data = bytes(self._rx[: sock.recv_into(self._rx)])
            except (TimeoutError, ssl.SSLWantReadError):
                data = b""
                continue
            if not data:
                raise ProtocolError("caster closed the connection")
        return None
