"""Plumbing shared by the broker, caster, daemon and lab: loopback ports, child processes with a log, atomic files."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """An ephemeral loopback port that is free right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_taken(port: int) -> bool:
    """Whether another socket holds a loopback port right now (it cannot be bound)."""
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


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


@contextlib.contextmanager
def stopped_on_error(service):
    """Stop `service` when the block raises: a half-started broker or caster leaves no process behind."""
    try:
        yield
    except Exception:
        service.stop()
        raise


def write_atomic(path: Path, data: str | bytes, mode: int = 0o600) -> Path:
    """Write `data` to `path` as the ztp module does: a temp file with the final mode, fsync, rename. Returns `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
