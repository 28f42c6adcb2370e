"""Output targets for corrections: serial port (pyserial), TCP client (e.g. ser2net) and file; all reopenable."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import weakref
from typing import Any

import serial

READ_WAIT = 1.0  # seconds a read waits for the receiver by default
RECV_SIZE = 65536


def _close_fds(fds: tuple[int, ...]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


# open() errors that mean the device node is not there (USB unplug, power cycle): whatever was cut meanwhile is lost
GONE_ERRNOS = (errno.ENOENT, errno.ENODEV, errno.ENXIO)


class Output:
    """One target. open/write_some/read raise OSError on failure; the writer closes and reopens.

    Writes are non-blocking and report what they took, so the writer always knows how much of a frame is out
    (a timed-out write of a cut frame is finished, not re-sent whole, after the reopen).
    """

    kind = "none"
    readable = False
    write_timeout = 10.0  # seconds one frame may take before the output counts as stuck and is reopened
    closed = "closed"  # the OSError of an output used while closed

    def __init__(self, target: str):
        self.target = target
        self._handle: Any = None  # what open() opened (a serial port, a socket, a descriptor); None when closed
        self._waker: tuple[int, int] | None = None  # a pipe that ends a waiting read (made on the first read)

    def _live(self) -> Any:
        """The open handle; OSError when the output is closed."""
        if self._handle is None:
            raise OSError(self.closed)
        return self._handle

    def _release(self, handle: Any) -> None:
        """Close what open() opened."""
        raise NotImplementedError

    def open(self) -> None:
        raise NotImplementedError

    def fileno(self) -> int:
        raise NotImplementedError

    def write_some(self, data: bytes | memoryview) -> int:
        """One non-blocking write: the number of bytes taken, 0 when the output is full."""
        try:
            return os.write(self.fileno(), data)
        except BlockingIOError:
            return 0

    def wait_writable(self, timeout: float) -> bool:
        """True once the output can take more bytes, False after `timeout` seconds."""
        poller = select.poll()
        poller.register(self.fileno(), select.POLLOUT)
        return bool(poller.poll(max(0.0, timeout) * 1000))

    def read(self, timeout: float = READ_WAIT, prompt: bool = True) -> bytes:
        """Bytes the receiver sent (waits up to `timeout` s, or until `wake`); b"" when none. `prompt`: return as
        soon as any arrive; else sleep the whole `timeout` (or until `wake`) and take what accumulated meanwhile,
        so a receiver's steady NMEA does not wake the reader once per sentence."""
        return b""

    def wake(self) -> None:
        """End a `read` that is waiting (stop, close, or work for the reading thread)."""
        if self._waker is not None:
            with contextlib.suppress(OSError):
                os.write(self._waker[1], b"\0")

    def _wait_readable(self, fd: int, timeout: float, prompt: bool = True) -> bool:
        """Block until `fd` is readable (True), `timeout` s passed or `wake` was called (False). Not `prompt`: wait
        for the timeout or `wake` only, then say whether `fd` is readable now (a tty read with nothing there returns
        b"" like a vanished device: only a readable descriptor is read)."""
        if self._waker is None:
            self._waker = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            weakref.finalize(self, _close_fds, self._waker)
        wake_fd = self._waker[0]
        ready, _writable, _errored = select.select([fd, wake_fd] if prompt else [wake_fd], [], [], max(0.0, timeout))
        if wake_fd in ready:
            with contextlib.suppress(OSError):
                os.read(wake_fd, 4096)
        if not prompt:
            ready, _writable, _errored = select.select([fd], [], [], 0)
        return fd in ready

    def identity(self) -> tuple[int, int, int] | None:
        """(st_dev, st_ino, st_rdev) of the open device node or file; None when unknown (TCP: a new connection may
        reach the same device). A different identity after a reopen means another (e.g. re-plugged) device."""
        st = os.fstat(self.fileno())
        return st.st_dev, st.st_ino, st.st_rdev

    def close(self) -> None:
        self.wake()  # a read waiting on the descriptor must not outlive it
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(Exception):  # the device or peer may be gone already
                self._release(handle)


class SerialOutput(Output):
    kind = "serial"
    readable = True
    closed = "serial port closed"

    def __init__(self, device: str, baudrate: int):
        super().__init__(device)
        self.baudrate = baudrate
        self._fd: int | None = None  # the open port's descriptor

    def open(self) -> None:
        try:
            # exclusive: one process owns the port for both the corrections and the NMEA it reads back
            self._handle = serial.Serial(self.target, self.baudrate, timeout=1.0, exclusive=True)
        except serial.SerialException as exc:
            err = OSError(str(exc))
            err.errno = exc.errno  # ENOENT etc.: the writer tells a vanished device from a busy one
            raise err from None
        self._fd = self._handle.fileno()

    def fileno(self) -> int:
        # pyserial opens the port non-blocking; writing to its descriptor (not Serial.write, which loses the count
        # of bytes written when it times out) lets the writer finish a cut frame. Kept from open() to close(): asking
        # pyserial for it on every write was three calls per frame.
        fd = self._fd
        if fd is None or self._handle is None:
            raise OSError(self.closed)
        return fd

    def close(self) -> None:
        self._fd = None
        super().close()

    def read(self, timeout: float = READ_WAIT, prompt: bool = True) -> bytes:
        # a select on the descriptor (not Serial.read, whose timeout is a port setting): the reader sleeps until
        # the receiver sends (prompt) or its next deadline, and `wake` ends the wait
        fd = self.fileno()
        if not self._wait_readable(fd, timeout, prompt):
            return b""
        try:
            data = os.read(fd, RECV_SIZE)
        except BlockingIOError:
            return b""
        if not data:  # as pyserial says it: readable with no data is a vanished device
            raise OSError("device reports readiness to read but returned no data (device disconnected?)")
        return data

    def _release(self, handle: serial.Serial) -> None:
        handle.close()


class TcpOutput(Output):
    kind = "tcp"
    readable = True
    closed = "socket closed"

    def __init__(self, host: str, port: int):
        super().__init__(f"{host}:{port}")
        self.host, self.port = host, port

    def open(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setblocking(False)
        self._handle = sock

    def identity(self) -> None:
        return None

    def fileno(self) -> int:
        return self._live().fileno()

    def read(self, timeout: float = READ_WAIT, prompt: bool = True) -> bytes:
        sock = self._live()
        if not self._wait_readable(sock.fileno(), timeout, prompt):
            return b""
        try:
            data = sock.recv(RECV_SIZE)
        except BlockingIOError:
            return b""
        if not data:
            raise OSError("connection closed by peer")
        return data

    def _release(self, handle: socket.socket) -> None:
        handle.close()


class FileOutput(Output):
    kind = "file"
    closed = "file closed"

    def open(self) -> None:
        self._handle = os.open(self.target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)

    def fileno(self) -> int:
        return self._live()

    def wait_writable(self, timeout: float) -> bool:
        return True  # a regular file takes what it can at once (a short write is retried)

    def _release(self, handle: int) -> None:
        os.close(handle)


def make_output(spec: dict) -> Output:
    """Output from the validated `output` config section."""
    if spec["type"] == "serial":
        return SerialOutput(spec["device"], spec["baudrate"])
    if spec["type"] == "tcp":
        return TcpOutput(spec["host"], spec["port"])
    return FileOutput(spec["path"])
