"""redact.py: one secret filter for log messages, formatted tracebacks, the status file and sd_notify STATUS=
(issue 13)."""

from __future__ import annotations

import io
import json
import logging
import socket

from pointperfect_forwarder import config
from pointperfect_forwarder.app import Forwarder, Pipeline
from pointperfect_forwarder.redact import RedactFilter, Redactor
from pointperfect_forwarder.systemd import Notifier

PASSWORD = "s3cr3t-pass"
KEY = "c0ffee00" * 4


def _logger(secrets: list[str]) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactFilter(secrets))
    log = logging.getLogger(f"test.redact.{id(out)}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log, out


def test_traceback_of_log_exception_is_redacted():
    log, out = _logger([PASSWORD, KEY])
    try:
        raise RuntimeError(f"caster echoed {PASSWORD} and key {KEY}")
    except RuntimeError:
        log.exception("main loop error (continuing)")
    try:
        raise ValueError(PASSWORD)
    except ValueError as exc:
        log.error("failed", exc_info=exc, stack_info=True)
    text = out.getvalue()
    assert "Traceback" in text and "RuntimeError: caster echoed *** and key ***" in text
    assert "ValueError: ***" in text
    assert PASSWORD not in text and KEY not in text


def test_short_secrets_are_redacted_as_whole_tokens():
    log, out = _logger(["pw", "x"])
    log.info("password %s, user:%s", "pw", "x")
    log.info("pwned words stay: explain, x1")
    assert out.getvalue().splitlines() == ["INFO password ***, user:***", "INFO pwned words stay: explain, x1"]
    r = Redactor(["ab"])
    assert r.redact("ab") == "***" and r.redact("'ab'") == "'***'" and r.redact("abc") == "abc"


def _settings(tmp_path, password: str = PASSWORD) -> config.Settings:
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_text("c")
    key.write_text("k")
    creds = {
        "format": 1,
        "ntrip": {
            "host": "nt.example",
            "tls_port": 2102,
            "mountpoint": "NEAR-SPARTN",
            "username": "user",
            "password": password,
        },
        "dynamickeys": {"current": {"start": 1661558382000, "duration": 2419199999, "value": KEY}},
    }
    (tmp_path / "credentials.json").write_text(json.dumps(creds))
    cfg = {
        "credentials_file": str(tmp_path / "credentials.json"),
        "input": "ntrip",
        "output": {"type": "file", "path": str(tmp_path / "out.bin")},
        "health": {"status_file": str(tmp_path / "status.json"), "metrics_port": None},
    }
    (tmp_path / "forwarder.json").write_text(json.dumps(cfg))
    return config.load(str(tmp_path / "forwarder.json"))


def test_secrets_include_the_basic_auth_token_and_short_passwords(tmp_path):
    s = _settings(tmp_path, password="pw")
    assert "pw" in s.secrets() and KEY in s.secrets() and KEY.upper() in s.secrets()
    assert "dXNlcjpwdw==" in s.secrets()  # base64("user:pw"), the Authorization header


def test_status_file_and_sd_notify_status_go_through_the_filter(tmp_path):
    s = _settings(tmp_path)
    path = str(tmp_path / "n.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    try:
        fwd = Forwarder(s, notifier=Notifier({"NOTIFY_SOCKET": path}))
        fwd.redactor.set_secrets(s.secrets())  # what _start does
        fwd.pipeline = Pipeline(s)
        fwd.pipeline.stats.error(f"caster said: bad password {PASSWORD}, key {KEY}")
        fwd._write_status()
        status = (tmp_path / "status.json").read_text()
        assert json.loads(status)["last_error"] == "caster said: bad password ***, key ***"
        assert PASSWORD not in status and KEY not in status
        assert fwd.notifier.status(f"ntrip backoff ({PASSWORD})\nREADY=1")
        assert sock.recv(200) == b"STATUS=ntrip backoff (***) READY=1"
        fwd.notifier.close()
    finally:
        sock.close()


def test_redact_json_matches_the_walk_and_skips_it_only_when_no_secret_shows():
    from pointperfect_forwarder.health import status_text  # noqa: PLC0415 - only here

    walks = []

    class Counting(Redactor):
        def redact_obj(self, obj):
            walks.append(1)
            return super().redact_obj(obj)

    r = Counting(["s3cret-value", "pw"])
    clean = {"b": {"x": [1, "é", None]}, "a": "nothing here", "pwd": "spw, pwx"}  # "pw" only inside words
    assert r.redact_json(clean, status_text) == status_text(r.redact_obj(clean)) == status_text(clean)
    walks.clear()
    r.redact_json(clean, status_text)
    assert walks  # "pw" shows in the text (inside words): the walk decides
    plain = {"a": "ok", "n": 2}
    walks.clear()
    assert r.redact_json(plain, status_text) == status_text(plain)
    assert walks == []  # no secret anywhere in the text: no walk
    leaky = {"err": "bad s3cret-value", "s3cret-value": 1, "short": "pw"}
    text = r.redact_json(leaky, status_text)
    assert json.loads(text) == {"err": "bad ***", "***": 1, "short": "***"}
    # a secret that json escapes (a quote, a backslash, non-ASCII) would not show verbatim: always walked
    for secret in ('quo"te', "back\\slash", "pässword"):
        escaped = Redactor([secret])
        assert json.loads(escaped.redact_json({"e": f"x {secret} y"}, status_text)) == {"e": "x *** y"}
