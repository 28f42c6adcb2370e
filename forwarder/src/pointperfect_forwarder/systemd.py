"""systemd notify protocol (READY, WATCHDOG, STOPPING, STATUS) over $NOTIFY_SOCKET, stdlib only."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable


class Notifier:
    def __init__(self, env: dict | None = None):
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET") or None
        if addr and addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace
        self._addr = addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        own = not pid or (pid.isdigit() and int(pid) == os.getpid())
        # ping at half the watchdog period, as sd_watchdog_enabled() recommends
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and own else None
        self._sock = None
        self.redact: Callable[[str], str] | None = None  # the log's secret filter, for STATUS=

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def notify(self, *fields: str) -> bool:
        if not self._addr:
            return False
        fields = tuple(self._clean(f) for f in fields)
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), self._addr)
            return True
        except OSError:
            return False

    def _clean(self, field: str) -> str:
        """STATUS= is one line (a newline would start another field) and goes through the secret filter."""
        if not field.startswith("STATUS="):
            return field
        text = " ".join(field[7:].splitlines())
        return "STATUS=" + (self.redact(text) if self.redact else text)

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
