"""The one secret filter: log records (message, formatted traceback, stack), the status file and sd_notify STATUS=."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

MASK = "***"
# characters json.dumps writes as they are (ensure_ascii): a secret made of them only appears verbatim in the text
_VERBATIM = frozenset(chr(c) for c in range(0x20, 0x80)) - {'"', "\\"}
SHORT = 4  # secrets shorter than this are replaced only as a whole token, never inside a longer word


class Redactor:
    """Replaces every known secret in a text. Secrets of 4 characters or more go wherever they appear; shorter ones
    (an NTRIP password of 1-3 characters) only where they stand alone (not next to a letter or digit), so a
    password "a" does not blank every "a" in the log, and still never appears as a value of its own."""

    def __init__(self, secrets: list[str] | None = None):
        self._lock = threading.Lock()
        self._pattern: re.Pattern | None = None
        self._anywhere: re.Pattern | None = None  # every secret as plain text (no word rule), for `redact_json`
        self._verbatim = True  # every secret is written by json.dumps as it is
        self.set_secrets(secrets or [])

    def set_secrets(self, secrets: list[str]) -> None:
        parts, plain = [], []
        known = sorted({s for s in secrets if isinstance(s, str) and s}, key=len, reverse=True)
        for s in known:
            esc = re.escape(s)
            plain.append(esc)
            parts.append(esc if len(s) >= SHORT else rf"(?<![A-Za-z0-9]){esc}(?![A-Za-z0-9])")
        with self._lock:
            self._pattern = re.compile("|".join(parts)) if parts else None
            self._anywhere = re.compile("|".join(plain)) if plain else None
            self._verbatim = all(_VERBATIM.issuperset(s) for s in known)

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

    def redact_json(self, obj: Any, dumps: Callable[[Any], str]) -> str:
        """`dumps(redact_obj(obj))`, without the walk when no secret occurs anywhere in `dumps(obj)`: a secret that
        json writes verbatim would show there, so the text is then the same."""
        with self._lock:
            anywhere, verbatim = self._anywhere, self._verbatim
        text = dumps(obj)
        if anywhere is None or (verbatim and anywhere.search(text) is None):
            return text
        return dumps(self.redact_obj(obj))


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
