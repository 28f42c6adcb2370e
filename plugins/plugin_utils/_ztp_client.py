# HTTPS client for the ZTP API (requests): retry policy with jittered backoff and mapping to one-line errors.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# NOTE: THIS IS NOT A PUBLIC API.
# This plugin_utils is PRIVATE and should only be used by this collection (controller side only).
# Breaking changes can occur any time, without notice.


import contextlib
import email.utils
import ipaddress
import json
import os
import random
import re
import time

try:
    from urllib.parse import urlsplit
except ImportError:  # Python 2 is not supported by this collection; kept importable for sanity tests
    from urlparse import urlsplit

try:
    import requests
except ImportError:  # reported by ZtpClient with a hint to install it
    requests = None

from ansible_collections.gnss.pointperfect.plugins.module_utils._ztp_options import (
    DEFAULT_URL,
    hardware_id_error,
    token_error,
)
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_response import (
    NOT_ACTIVATED,
    ZtpError,
    ZtpNotActivated,
    parse_body,
)

RETRYABLE_STATUS = frozenset([408, 429, 500, 502, 503, 504]) | frozenset(range(505, 600))
BACKOFF_BASE = 1.0  # seconds before the first retry (before jitter)
BACKOFF_CAP = 60.0  # longest computed backoff
RETRY_AFTER_MAX = 300.0  # a Retry-After beyond this is not waited for: fail and say when to come back
ACTIVATION_DELAYS = (2, 4, 8, 15)  # waits between "not activated" answers; the last one repeats
# Largest 200 body read. A real answer is a certificate, a key and a few dozen topics (under 20 KiB); the cap keeps
# a hostile or broken API from filling the controller's memory.
MAX_RESPONSE_BYTES = 256 * 1024
ERROR_BODY_BYTES = 4096  # of a non-200 answer only the start is read (its reason is quoted in one line)
_CHUNK = 16 * 1024

_ERRNO = re.compile(r'\[Errno -?\d+\] ([^\'")]+)')


def one_line(text, limit=200):
    """Collapse whitespace to one line and cut long texts."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def backoff_delay(attempt, retry_after=None, rng=random.random):
    """Seconds to wait before retry number attempt+1 (attempt counts from 0).

    Exponential backoff with jitter in [50 %, 100 %] of min(cap, base * 2**attempt); a Retry-After from the
    server is a floor (never retry earlier than the server asked).
    """
    computed = min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))
    delay = computed * (0.5 + 0.5 * rng())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def parse_retry_after(value, now=None):
    """Retry-After as seconds (delta-seconds or HTTP date), None when absent or unparsable."""
    if value is None:
        return None
    value = str(value).strip()
    if re.match(r"^[0-9]+(\.[0-9]+)?$", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def activation_delay(n):
    """Seconds to wait after the n-th (from 0) "not activated" answer: 2, 4, 8, 15, 15..."""
    return ACTIVATION_DELAYS[min(n, len(ACTIVATION_DELAYS) - 1)]


def api_reason(text, token=None):
    """The API's own reason for an error answer, one line and without the token: the message of a JSON error body
    (message, error, reason or detail), else the text itself."""
    text = text or ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error", "reason", "detail", "error_description"):
            if isinstance(body.get(key), str) and body[key].strip():
                text = body[key]
                break
    if token:
        text = text.replace(token, "********")
    return one_line(text, 160)


# A 403's reason (lowercase words in it) -> its remedy; the first match wins.
FORBIDDEN_REMEDIES = (
    (
        "already registered",
        "device already registered on another device profile; remove it there in Thingstream or use another "
        "hardware_id",
    ),
    (
        "no plan",
        "no plan for device; assign a PointPerfect plan to the device profile in Thingstream, then run again",
    ),
    ("not whitelisted", "hardware code not whitelisted; allow it in the device profile in Thingstream, then run again"),
)


def error_for_status(status, text, hardware_id, retries, token=None):  # noqa: PLR0911 - one answer per HTTP status
    """The one-line ZtpError message for a final non-200 answer; every 4xx quotes the API's reason."""
    reason = api_reason(text, token) or "no reason given"
    low = reason.lower()
    http = "HTTP %d: %s" % (status, reason)
    if status == 403:
        remedy = next((r for words, r in FORBIDDEN_REMEDIES if words in low), "check the device profile in Thingstream")
        return ZtpError("ZTP refused hardware id %r (%s): %s" % (hardware_id, http, remedy))
    if status == 401:
        return ZtpError(
            "ZTP rejected the token (%s); set the device-profile token (option token or POINTPERFECT_ZTP_TOKEN, a "
            'lowercase 36-character UUID) and enable "Return existing device details" on the profile' % http
        )
    if status == 400:
        return ZtpError(
            "ZTP API refused the request for hardware id %r (%s); check hardware_id, given_name and tags"
            % (hardware_id, http)
        )
    if status == 404:
        return ZtpError("ZTP API has no such endpoint (%s); check api_url" % http)
    if status == 429:
        return ZtpError(
            "ZTP API rate limit (%s) persisted after %d retries; wait a few minutes and run again" % (http, retries)
        )
    if status in RETRYABLE_STATUS:
        return ZtpError(
            "ZTP API unavailable (HTTP %d%s) after %d retries; run again later"
            % (status, "" if status >= 500 else ": " + reason, retries)
        )
    if 400 <= status < 500:
        return ZtpError("ZTP API refused the request (%s); check api_url and the task's options" % http)
    return ZtpError(
        "ZTP API answered unexpected HTTP %d (%s); check api_url and run again"
        % (status, api_reason(text, token) or "no body")
    )


def ca_path_error(ca_path):
    """The one-line error when ca_path cannot be used as a CA bundle on the controller, None when it can."""
    if not ca_path:
        return None
    if os.path.isdir(ca_path):
        return None  # a hashed certificate directory (c_rehash), as requests accepts
    try:
        with open(ca_path, "rb") as f:
            head = f.read(1 << 20)
    except OSError as e:
        what = "does not exist" if isinstance(e, FileNotFoundError) else "cannot be read (%s)" % (e.strerror or e)
        return (
            "ca_path %s %s on the controller; set ca_path to a PEM CA bundle file there, or leave it unset to "
            "use the default trust store" % (ca_path, what)
        )
    if b"-----BEGIN CERTIFICATE-----" not in head:
        return "ca_path %s holds no PEM certificate (-----BEGIN CERTIFICATE-----); set it to a PEM CA bundle" % ca_path
    return None


def _is_loopback(host):
    host = (host or "").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_url_error(api_url):
    """The one-line error when api_url must not carry the token: only https, or http to a loopback host (the
    simulator); None when it is usable."""
    text = str(api_url or "")
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or not host or any(ord(ch) < 33 or ord(ch) == 127 for ch in text):
        return "api_url is not a valid URL; set it to the https URL of the ZTP API (or leave it unset)"
    scheme = parts.scheme.lower()
    if scheme == "https":
        return None
    if scheme == "http" and _is_loopback(host):
        return None  # the local simulator; the token never leaves the machine
    if scheme == "http":
        return (
            "api_url uses http:// to %s, which would send the token unencrypted; use https:// (plain http is only "
            "accepted for a loopback host such as 127.0.0.1 or localhost)" % _safe_host(host)
        )
    return "api_url must be an https:// URL (got scheme %s)" % _safe_host(scheme)


def _safe_host(text):
    """A host name for a message: only host-name characters, never control or escape sequences."""
    return re.sub(r"[^A-Za-z0-9.:\[\]_-]", "?", str(text or ""))[:100] or "?"


def _location_host(location):
    try:
        host = urlsplit(str(location or "")).hostname
    except ValueError:
        host = None
    return _safe_host(host) if host else "an unknown host"


def read_capped(response, limit):
    """(body bytes up to limit, True when the body was longer). Reads in chunks and stops past the limit."""
    length = None
    headers = getattr(response, "headers", None) or {}
    with contextlib.suppress(TypeError, ValueError):
        length = int(headers.get("Content-Length"))
    if length is not None and length > limit:
        return b"", True
    iter_content = getattr(response, "iter_content", None)
    if iter_content is None:  # a response object without streaming
        data = response.content or b""
        return data[:limit], len(data) > limit
    data = bytearray()
    for chunk in iter_content(_CHUNK):
        data += chunk
        if len(data) > limit:
            return bytes(data[:limit]), True
    return bytes(data), False


def _close(response):
    with contextlib.suppress(Exception):
        response.close()


def _os_reason(exc):
    m = _ERRNO.search(str(exc))
    return one_line(m.group(1), 80) if m else exc.__class__.__name__


class ZtpClient:
    """Calls the ZTP API once per provisioning, with retries. Every failure is a ZtpError with a one-line message."""

    def __init__(
        self,
        api_url=DEFAULT_URL,
        *,
        timeout=30,
        retries=3,
        validate_certs=True,
        ca_path=None,
        session=None,
        activation_timeout=0,
        sleep=time.sleep,
        rng=random.random,
        clock=time.monotonic,
    ):
        if requests is None and session is None:
            raise ZtpError(
                "the gnss.pointperfect.ztp module needs the Python library requests on the controller: "
                "pip install requests"
            )
        self.api_url = api_url
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.verify = (ca_path or True) if validate_certs else False
        self.ca_path = ca_path
        self.session = session
        self.sleep = sleep
        self.rng = rng
        self.clock = clock
        self.activation_timeout = max(0, int(activation_timeout or 0))
        self.activation_waited = 0.0  # seconds spent waiting for the device to be activated
        self.attempts = 0  # HTTP requests made (tests and the action plugin report it)

    def _post(self, payload):
        session = self.session or requests
        if self.verify is False:
            with contextlib.suppress(Exception):  # only silences the insecure-request warning
                requests.packages.urllib3.disable_warnings()
        return session.post(
            self.api_url,
            json=payload,
            timeout=self.timeout,
            verify=self.verify,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            allow_redirects=False,  # a redirect would carry the token elsewhere: refused below
            stream=True,  # the body is read in chunks up to MAX_RESPONSE_BYTES
        )

    def check_request(self, token, hardware_id):
        """Everything checked locally before a call: token, hardware id, ca_path. Raises a one-line ZtpError."""
        if not token:
            raise ZtpError("no ZTP token: set the token option or the POINTPERFECT_ZTP_TOKEN environment variable")
        ca_path = self.ca_path if self.verify is not False else None  # validate_certs=false ignores ca_path
        for error in (
            api_url_error(self.api_url),
            token_error(token),
            hardware_id_error(hardware_id),
            ca_path_error(ca_path),
        ):
            if error:
                raise ZtpError(error)

    def request(self, token, hardware_id, given_name=None, tags=None):
        """POST the credentials request; return the raw 200 body (bytes)."""
        self.check_request(token, hardware_id)
        payload = {"token": token, "hardwareId": hardware_id, "givenName": given_name or hardware_id}
        if tags:
            payload["tags"] = list(tags)
        attempt = 0
        while True:
            retry_after = None
            try:
                self.attempts += 1
                response = self._post(payload)
            except Exception as e:  # classified below; the exception text is never shown as is
                failure = self._classify_exception(e, attempt)
                if failure is not None:
                    raise failure from None
            else:
                status = response.status_code
                if 300 <= status < 400:
                    _close(response)
                    raise ZtpError(
                        "ZTP API answered HTTP %d, a redirect to %s; redirects are not followed, so the token is "
                        "never sent there: set api_url to the final https URL"
                        % (status, _location_host((response.headers or {}).get("Location")))
                    )
                if 200 <= status < 300:
                    body = self._read_body(response, attempt)
                    if body is not None:
                        return body
                elif status not in RETRYABLE_STATUS or attempt >= self.retries:
                    text = _safe_text(response)
                    _close(response)
                    raise error_for_status(status, text, hardware_id, attempt, token)
                else:
                    _close(response)
                    retry_after = parse_retry_after((response.headers or {}).get("Retry-After"))
                if retry_after is not None and retry_after > RETRY_AFTER_MAX:
                    raise ZtpError(
                        "ZTP API asked to retry after %d seconds (HTTP %d); run again later" % (retry_after, status)
                    )
            self.sleep(backoff_delay(attempt, retry_after, self.rng))
            attempt += 1

    def _read_body(self, response, attempt):
        """A 2xx answer's body; None to retry (the connection was cut while reading), else a final ZtpError."""
        try:
            body, too_long = read_capped(response, MAX_RESPONSE_BYTES)
        except Exception as e:  # a connection cut while reading the body
            body, too_long = None, False
            failure = self._classify_exception(e, attempt)
            if failure is not None:
                raise failure from None
        finally:
            _close(response)
        if too_long:
            raise ZtpError(
                "ZTP API answered more than %d KiB, far more than any credentials answer; check "
                "api_url, and report it if it persists" % (MAX_RESPONSE_BYTES // 1024)
            )
        return body

    def _classify_exception(self, exc, attempt):
        """None to retry, else the final ZtpError. TLS failures are never retried."""
        ssl_error = getattr(getattr(requests, "exceptions", None), "SSLError", None)
        if ssl_error is not None and isinstance(exc, ssl_error):
            return ZtpError(
                "TLS verification of the ZTP API failed (%s); check ca_path or the controller's system "
                "trust store" % self.api_url
            )
        timeout_error = getattr(getattr(requests, "exceptions", None), "Timeout", ())
        connection_error = getattr(getattr(requests, "exceptions", None), "ConnectionError", ())
        if isinstance(exc, (timeout_error, connection_error)):  # retried until the retries are used up
            if attempt < self.retries:
                return None
            if isinstance(exc, timeout_error):
                return ZtpError(
                    "ZTP API did not answer within timeout=%s s (after %d retries); run again later "
                    "or raise timeout" % (self.timeout, attempt)
                )
            return ZtpError(
                "cannot connect to the ZTP API at %s (%s) after %d retries; check api_url and "
                "network access from the controller" % (self.api_url, _os_reason(exc), attempt)
            )
        if isinstance(exc, (IOError, OSError)) and self.ca_path:  # requests fails this way on a bad CA bundle
            return ZtpError(
                "ZTP request failed (%s: %s); check ca_path %s and api_url"
                % (exc.__class__.__name__, _os_reason(exc), self.ca_path)
            )
        return ZtpError("ZTP request failed (%s); check api_url" % exc.__class__.__name__)

    def fetch(self, token, hardware_id, given_name=None, tags=None):
        """request() + parse_body(): the validated credentials model.

        A "not activated" answer is asked again within activation_timeout seconds (2, 4, 8, 15, 15... s apart,
        never past the timeout), as RTK-E HTTP_Client.ino does; then a one-line ZtpNotActivated.
        """
        deadline = self.clock() + self.activation_timeout
        answers = 0
        while True:
            try:
                return parse_body(self.request(token, hardware_id, given_name, tags))
            except ZtpNotActivated:
                answers += 1
                left = deadline - self.clock()
                if left <= 0:
                    if self.activation_timeout <= 0:
                        raise
                    waited = " %d times within activation_timeout=%d s" % (answers, self.activation_timeout)
                    raise ZtpNotActivated(NOT_ACTIVATED % waited) from None
            delay = min(activation_delay(answers - 1), left)
            self.sleep(delay)
            self.activation_waited += delay


def _safe_text(response):
    """The start of an error answer's body as text (never more than ERROR_BODY_BYTES read)."""
    try:
        data = read_capped(response, ERROR_BODY_BYTES)[0]
        return data.decode("utf-8", "replace")[:2000]
    except Exception:
        return ""
