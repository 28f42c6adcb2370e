"""inputs/__init__.py: what both inputs share: the TLS context, and the reports of a session (state, last_error
and one warning from the input's own logger), the connect failure and the no-data watchdog."""

from __future__ import annotations

import logging
import ssl
import threading
import time

import pytest
from pointperfect_forwarder.backoff import Backoff
from pointperfect_forwarder.inputs import Input, tls_context
from pointperfect_forwarder.stats import Stats


class _Pipe:
    output_ready = threading.Event()


class _Input(Input):
    kind = "test"


def _input() -> _Input:
    return _Input(None, None, Stats("test", "h:1", "file", "/x"), _Pipe(), backoff=Backoff(), no_data_timeout=30)


def test_tls_context_verifies_the_server_and_loads_a_client_certificate():
    ctx = tls_context(None)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(FileNotFoundError):
        tls_context(None, "/nonexistent/client.crt", "/nonexistent/client.key")


def test_report_sets_the_state_and_logs_once_from_the_inputs_logger(caplog):
    inp = _input()
    with caplog.at_level(logging.WARNING):
        inp.report("backoff", "connection lost (EOF)")
    assert (inp.stats.input_state, inp.stats.input_error, inp.stats.last_error) == (
        "backoff",
        "connection lost (EOF)",
        "connection lost (EOF)",
    )
    assert [(r.name, r.getMessage()) for r in caplog.records] == [(__name__, "test input: connection lost (EOF)")]


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
        (ValueError("Invalid host."), "Invalid host."),
        (TimeoutError(), "TimeoutError"),
    ],
)
def test_connect_failed_words_the_reason(exc, reason):
    inp = _input()
    inp.connect_failed("h:1", exc)
    assert inp.stats.input_state == "connecting"
    assert inp.stats.last_error == f"connect to h:1 failed: {reason}"


def test_too_silent_ends_the_session_after_the_limit_only(caplog):
    inp = _input()
    since = time.monotonic() - 50
    assert inp.too_silent(since, 60) is False and inp.stats.input_state == "starting"
    inp.stats.last_data_mono = time.monotonic() - 40  # the last data counts when it is later than `since`
    assert inp.too_silent(since, 45) is False
    assert inp.too_silent(since, 30) is True
    assert inp.stats.input_state == "backoff" and inp.stats.last_error == "no data for 40 s: reconnecting"
    inp.stats.last_data_mono = None
    assert inp.too_silent(since, 30, " since connecting") is True
    assert inp.stats.last_error == "no data for 50 s since connecting: reconnecting"
    assert len(caplog.records) == 2
