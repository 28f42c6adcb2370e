"""The one secret filter: log records (message, formatted traceback, stack), the status file and sd_notify STATUS=."""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

MASK = "***"
SHORT = 4  # secrets shorter than this are replaced only as a whole token, never inside a longer word


class Redactor:
    """Replaces every known secret in a text. Secrets of 4 characters or more go wherever they appear; shorter ones
    (an NTRIP password of 1-3 characters) only where they stand alone (not next to a letter or digit), so a
    password "a" does not blank every "a" in the log, and still never appears as a value of its own."""

    def __init__(self, secrets: list[str] | None = None):
        self._lock = threading.Lock()
        self._pattern: re.Pattern | None = None
        self.set_secrets(secrets or [])

    def set_secrets(self, secrets: list[str]) -> None:
        parts = []
        for s in sorted({s for s in secrets if isinstance(s, str) and s}, key=len, reverse=True):
            esc = re.escape(s)
            parts.append(esc if len(s) >= SHORT else rf"(?<![A-Za-z0-9]){esc}(?![A-Za-z0-9])")
        with self._lock:
            self._pattern = re.compile("|".join(parts)) if parts else None

    def redact(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not isinstance(text, str):
            return text
        return pattern.sub(MASK, text)

    def redact_obj(self, obj: Any) -> Any:
        """Every string (and dict key) in a JSON-like document."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, dict):
            return {self.redact_obj(k): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.redact_obj(v) for v in obj]
        return obj


class RedactFilter(logging.Filter, Redactor):
    """Last line of defence on the log handler: the message, a formatted traceback (log.exception) and a stack."""

    def __init__(self, secrets: list[str] | None = None):
        logging.Filter.__init__(self)
        Redactor.__init__(self, secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string: the logging module reports it, without our help
            return True
        redacted = self.redact(msg)
        if redacted != msg:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True
