"""Unit tests of the ZTP client: retry policy (backoff, jitter, Retry-After), error mapping, no network."""

import json

import pytest
import requests
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _ztp_client as c
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_response import ZtpError

TOKEN = "8f6b2f0c-1c1e-4d0a-9a51-0000000000aa"


class FakeResponse:
    def __init__(self, status, body=b"", headers=None):
        self.status_code = status
        self.content = body if isinstance(body, bytes) else body.encode()
        self.text = self.content.decode("utf-8", "replace")
        self.headers = headers or {}
        self.read = 0  # bytes handed out by iter_content
        self.closed = False

    def iter_content(self, size):
        for i in range(0, len(self.content), size):
            self.read += len(self.content[i : i + size])
            yield self.content[i : i + size]

    def close(self):
        self.closed = True


class FakeSession:
    """Replays a script of responses or exceptions and records each request."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []

    def post(self, url, json=None, timeout=None, verify=None, headers=None, **kw):
        self.requests.append(dict(kw, url=url, json=json, timeout=timeout, verify=verify, headers=headers))
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def client(script, **kw):
    sleeps = []
    session = FakeSession(script)
    kw.setdefault("retries", 3)
    cl = c.ZtpClient("https://ztp.test/credentials", session=session, sleep=sleeps.append, rng=lambda: 0.5, **kw)
    return cl, session, sleeps


def test_request_shape_and_success(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    cl, session, sleeps = client([FakeResponse(200, b'{"ok": 1}')], timeout=7, ca_path=str(ca))
    assert cl.request(TOKEN, "gw-01", None, ["ztp"]) == b'{"ok": 1}'
    req = session.requests[0]
    assert req["json"] == {"token": TOKEN, "hardwareId": "gw-01", "givenName": "gw-01", "tags": ["ztp"]}
    assert req["headers"] == {"Content-Type": "application/json", "Accept": "application/json"}
    assert (req["timeout"], req["verify"]) == (7, str(ca))
    assert (req["allow_redirects"], req["stream"]) == (False, True)
    assert sleeps == []


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_an_error_naming_the_host_and_never_followed(status):
    location = "http://evil.example:8080/steal\x1b[31m?x=1"
    cl, session, sleeps = client([FakeResponse(status, headers={"Location": location})])
    with pytest.raises(ZtpError) as exc:
        cl.request(TOKEN, "gw-01")
    msg = str(exc.value)
    assert f"HTTP {status}" in msg and "evil.example" in msg and "redirects are not followed" in msg
    assert "\n" not in msg and "\x1b" not in msg and TOKEN not in msg
    assert len(session.requests) == 1 and sleeps == []  # not followed, not retried


@pytest.mark.parametrize(
    "url",
    [
        "http://ztp.example.com/credentials",
        "http://10.0.0.1/x",
        "http://127.0.0.1.evil.example/x",
        "ftp://ztp.example.com/x",
        "file:///etc/passwd",
        "https://ztp.example.com/\r\nX: y",
        "not a url",
    ],
)
def test_api_url_refused_before_any_call(url):
    session = FakeSession([FakeResponse(200, b"{}")])
    cl = c.ZtpClient(url, session=session, sleep=lambda s: None)
    with pytest.raises(ZtpError, match="api_url") as exc:
        cl.request(TOKEN, "gw-01")
    assert "\n" not in str(exc.value) and "\r" not in str(exc.value)
    assert session.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://ztp.example.com/x",
        "http://127.0.0.1:8443/ztp",
        "http://127.8.9.10/ztp",
        "http://localhost:1/ztp",
        "http://[::1]:8080/ztp",
    ],
)
def test_api_url_https_or_loopback_http_accepted(url):
    assert c.api_url_error(url) is None
    session = FakeSession([FakeResponse(200, b"{}")])
    assert c.ZtpClient(url, session=session).request(TOKEN, "gw-01") == b"{}"


def test_response_size_cap_stops_reading():
    big = FakeResponse(200, b"x" * (c.MAX_RESPONSE_BYTES * 4))
    cl, _, _ = client([big])
    with pytest.raises(ZtpError, match="more than 256 KiB") as exc:
        cl.request(TOKEN, "gw-01")
    assert "\n" not in str(exc.value)
    assert big.read <= c.MAX_RESPONSE_BYTES + 64 * 1024 and big.closed
    declared = FakeResponse(200, b"{}", headers={"Content-Length": str(10**9)})
    cl, _, _ = client([declared])
    with pytest.raises(ZtpError, match="more than 256 KiB"):
        cl.request(TOKEN, "gw-01")
    assert declared.read == 0
    exact = FakeResponse(200, b" " * c.MAX_RESPONSE_BYTES)
    assert client([exact])[0].request(TOKEN, "gw-01") == exact.content


def test_error_body_read_is_capped():
    big = FakeResponse(400, b"y" * (c.MAX_RESPONSE_BYTES * 4))
    cl, _, _ = client([big])
    with pytest.raises(ZtpError, match="HTTP 400"):
        cl.request(TOKEN, "gw-01")
    assert big.read <= c.ERROR_BODY_BYTES + 16 * 1024


def test_verify_modes():
    assert c.ZtpClient(session=object()).verify is True
    assert c.ZtpClient(session=object(), validate_certs=False, ca_path="/x").verify is False


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_then_success(status):
    cl, session, sleeps = client([FakeResponse(status), FakeResponse(status), FakeResponse(200, b"{}")])
    assert cl.request(TOKEN, "gw-01") == b"{}"
    assert len(session.requests) == 3
    assert len(sleeps) == 2


def test_retry_after_is_honoured_as_floor():
    cl, _, sleeps = client([FakeResponse(429, headers={"Retry-After": "17"}), FakeResponse(200, b"{}")])
    cl.request(TOKEN, "gw-01")
    assert sleeps == [17.0]


def test_retry_after_http_date():
    assert c.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert c.parse_retry_after("garbage") is None
    assert c.parse_retry_after(None) is None
    assert c.parse_retry_after("3") == 3.0


def test_retry_after_too_long_fails_at_once():
    cl, session, sleeps = client([FakeResponse(429, headers={"Retry-After": "3600"})])
    with pytest.raises(ZtpError, match="retry after 3600 seconds"):
        cl.request(TOKEN, "gw-01")
    assert len(session.requests) == 1 and sleeps == []


def test_backoff_grows_exponentially_with_bounded_jitter():
    for attempt in range(8):
        base = min(c.BACKOFF_CAP, c.BACKOFF_BASE * 2**attempt)
        low = c.backoff_delay(attempt, rng=lambda: 0.0)
        high = c.backoff_delay(attempt, rng=lambda: 0.999999)
        assert low == pytest.approx(base / 2)
        assert base / 2 <= high < base + 1e-6
    assert c.backoff_delay(20, rng=lambda: 1.0) <= c.BACKOFF_CAP
    assert c.backoff_delay(0, retry_after=5, rng=lambda: 1.0) == 5
    assert c.backoff_delay(5, retry_after=1, rng=lambda: 1.0) == 32


def test_jitter_uses_real_randomness_within_bounds():
    delays = {c.backoff_delay(2) for _ in range(50)}
    assert len(delays) > 1
    assert all(2.0 <= d <= 4.0 for d in delays)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (429, r"rate limit \(HTTP 429: no reason given\) persisted after 3 retries"),
        (503, r"unavailable \(HTTP 503\) after 3 retries"),
        (408, r"unavailable \(HTTP 408: no reason given\) after 3 retries"),
    ],
)
def test_gives_up_after_retries(status, message):
    cl, session, sleeps = client([FakeResponse(status)] * 4)
    with pytest.raises(ZtpError, match=message):
        cl.request(TOKEN, "gw-01")
    assert len(session.requests) == 4 and len(sleeps) == 3


def test_zero_retries():
    cl, session, _ = client([FakeResponse(500)], retries=0)
    with pytest.raises(ZtpError, match="after 0 retries"):
        cl.request(TOKEN, "gw-01")
    assert len(session.requests) == 1


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (403, "Device already registered", "already registered on another device profile"),
        (403, "No plan for device device:0b1c", "no plan for device; assign a PointPerfect plan"),
        (403, "Device hardware code not whitelisted", "hardware code not whitelisted; allow it"),
        (403, json.dumps({"message": "Device hardware code not whitelisted"}), "not whitelisted"),
        (403, "Forbidden for reasons", r"HTTP 403: Forbidden for reasons"),
        (401, "Invalid token", r"rejected the token \(HTTP 401: Invalid token\)"),
        (
            400,
            "Bad Request: hardwareId and givenName are limited to 128 characters",
            r"refused the request for hardware id 'gw-01' \(HTTP 400: Bad Request: hardwareId and givenName are "
            r"limited to 128 characters\); check hardware_id",
        ),
        (400, json.dumps({"message": "givenName is invalid"}), r"\(HTTP 400: givenName is invalid\)"),
        (400, "", r"\(HTTP 400: no reason given\)"),
        (404, "Not Found", r"no such endpoint \(HTTP 404: Not Found\); check api_url"),
        (405, "Method Not Allowed", r"refused the request \(HTTP 405: Method Not Allowed\)"),
        (415, json.dumps({"error": "Unsupported Media Type"}), r"\(HTTP 415: Unsupported Media Type\)"),
        (418, "teapot", r"HTTP 418: teapot"),
    ],
)
def test_error_mapping_not_retried(status, body, message):
    cl, session, sleeps = client([FakeResponse(status, body)])
    with pytest.raises(ZtpError, match=message) as exc:
        cl.request(TOKEN, "gw-01")
    assert len(session.requests) == 1 and sleeps == []
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 429])
def test_token_echoed_by_server_is_censored(status):
    cl, _, _ = client([FakeResponse(status, json.dumps({"message": f"token {TOKEN} is odd"}))], retries=0)
    with pytest.raises(ZtpError) as exc:
        cl.request(TOKEN, "gw-01")
    assert TOKEN not in str(exc.value) and "token ******** is odd" in str(exc.value)


@pytest.mark.parametrize(
    ("token", "hardware_id", "message"),
    [
        (TOKEN, "", "hardware_id is empty"),
        (TOKEN, "   ", "hardware_id is empty"),
        (TOKEN, "x" * 300, "hardware_id is 300 characters long: use at most 64"),
        (TOKEN, "gw 01/x", r"hardware_id 'gw 01/x' contains ' ', '/': use only letters, digits"),
        (TOKEN, " gw-01", "hardware_id ' gw-01' has leading or trailing whitespace"),
        ("not-a-token", "gw-01", r"the ZTP token is not a device-profile token \(11 characters; expected a lowercase"),
        (TOKEN.upper(), "gw-01", "the ZTP token has upper-case letters: write it in lower case"),
        (TOKEN + "\n", "gw-01", "the ZTP token has leading or trailing whitespace"),
        (" " + TOKEN, "gw-01", "the ZTP token has leading or trailing whitespace"),
        (TOKEN[:-1], "gw-01", r"not a device-profile token \(35 characters"),
    ],
)
def test_local_checks_before_any_call(token, hardware_id, message):
    cl, session, _ = client([FakeResponse(200, b"{}")])
    with pytest.raises(ZtpError, match=message) as exc:
        cl.request(token, hardware_id)
    assert session.requests == []
    assert "\n" not in str(exc.value) and TOKEN not in str(exc.value) and TOKEN.upper() not in str(exc.value)


@pytest.mark.parametrize("hardware_id", ["gw-01", "pp-" + "a" * 32, "AA:BB:CC:DD:EE:FF", "hpg_1.2", "x" * 64, TOKEN])
def test_accepted_hardware_ids(hardware_id):
    cl, session, _ = client([FakeResponse(200, b"{}")])
    assert cl.request(TOKEN, hardware_id) == b"{}"
    assert session.requests[0]["json"]["hardwareId"] == hardware_id


def test_ca_path_checked_before_any_call(tmp_path):
    cases = {
        str(tmp_path / "missing.pem"): r"^ca_path \S+missing.pem does not exist on the controller; set ca_path",
        str(tmp_path / "missing.pem" / "x"): r"^ca_path \S+ does not exist on the controller",
        str(tmp_path / "empty.pem"): r"^ca_path \S+empty.pem holds no PEM certificate",
    }
    (tmp_path / "empty.pem").write_text("")
    (tmp_path / "file").write_text("x")
    cases[str(tmp_path / "file" / "x")] = r"^ca_path \S+file/x cannot be read \(Not a directory\) on the controller"
    for ca_path, message in cases.items():
        cl, session, _ = client([FakeResponse(200, b"{}")], ca_path=ca_path)
        with pytest.raises(ZtpError, match=message):
            cl.request(TOKEN, "gw-01")
        assert session.requests == []
    # validate_certs=false ignores ca_path; a directory (c_rehash) is accepted as requests accepts it
    for kw in ({"ca_path": str(tmp_path / "missing.pem"), "validate_certs": False}, {"ca_path": str(tmp_path)}):
        cl, session, _ = client([FakeResponse(200, b"{}")], **kw)
        assert cl.request(TOKEN, "gw-01") == b"{}"


def test_os_error_from_requests_names_ca_path():
    cl, _, _ = client([OSError("Could not find a suitable TLS CA certificate bundle, invalid path: /x")], ca_path="/")
    with pytest.raises(ZtpError, match=r"ZTP request failed \(OSError: OSError\); check ca_path / and api_url"):
        cl.request(TOKEN, "gw-01")


def test_connection_errors_retried_then_one_line():
    err = requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='ztp.test', port=443): Max retries exceeded (Caused by NewConnectionError("
        "'<urllib3.connection.HTTPSConnection object>: Failed to establish a new connection: "
        "[Errno 111] Connection refused'))"
    )
    cl, session, sleeps = client([err] * 4)
    with pytest.raises(ZtpError, match=r"cannot connect to the ZTP API .*\(Connection refused\) after 3 retries"):
        cl.request(TOKEN, "gw-01")
    assert len(session.requests) == 4 and len(sleeps) == 3


def test_timeouts_retried_then_message():
    cl, session, _ = client(
        [requests.exceptions.ReadTimeout("read timed out")] * 2 + [requests.exceptions.ConnectTimeout("x")] * 2,
        timeout=5,
    )
    with pytest.raises(ZtpError, match=r"did not answer within timeout=5 s \(after 3 retries\)"):
        cl.request(TOKEN, "gw-01")
    assert len(session.requests) == 4


def test_timeout_then_success():
    cl, _, sleeps = client([requests.exceptions.ReadTimeout("x"), FakeResponse(200, b"{}")])
    assert cl.request(TOKEN, "gw-01") == b"{}"
    assert len(sleeps) == 1


def test_tls_failure_not_retried():
    cl, session, sleeps = client([requests.exceptions.SSLError("certificate verify failed")])
    with pytest.raises(ZtpError, match=r"TLS verification of the ZTP API failed .*check ca_path"):
        cl.request(TOKEN, "gw-01")
    assert len(session.requests) == 1 and sleeps == []


def test_unknown_exception_is_mapped():
    cl, _, _ = client([ValueError("boom " + TOKEN)])
    with pytest.raises(ZtpError, match=r"ZTP request failed \(ValueError\)") as exc:
        cl.request(TOKEN, "gw-01")
    assert TOKEN not in str(exc.value)


def test_missing_token():
    cl, session, _ = client([])
    with pytest.raises(ZtpError, match="POINTPERFECT_ZTP_TOKEN"):
        cl.request("", "gw-01")
    assert session.requests == []


def test_fetch_parses(monkeypatch):
    cl, _, _ = client([FakeResponse(200, b"not json")])
    with pytest.raises(ZtpError, match="malformed JSON"):
        cl.fetch(TOKEN, "gw-01")


class FakeClock:
    """Monotonic time that advances only when the client sleeps (or a request takes time)."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


NOT_ACTIVATED = json.dumps({"clientId": "x", "supportsMqtt": True, "brokerHost": "h"})
NTRIP_OK = json.dumps(
    {
        "supportsMqtt": False,
        "supportsLband": False,
        "rtcmCredentials": {
            "endpoint": "ppntrip.services.u-blox.com",
            "httpPort": "2101",
            "userName": "u",
            "password": "p",
            "mountPoint": "NEAR-RTCM",
        },
    }
)


def activation_client(script, activation_timeout):
    clock = FakeClock()
    session = FakeSession(script)
    cl = c.ZtpClient(
        "https://ztp.test/credentials",
        session=session,
        sleep=clock.sleep,
        clock=clock,
        rng=lambda: 0.5,
        retries=1,
        activation_timeout=activation_timeout,
    )
    return cl, session, clock


def test_activation_delays():
    assert [c.activation_delay(n) for n in range(7)] == [2, 4, 8, 15, 15, 15, 15]


def test_not_activated_first_call_is_retried_transparently():
    cl, session, clock = activation_client([FakeResponse(200, NOT_ACTIVATED), FakeResponse(200, NTRIP_OK)], 60)
    assert cl.fetch(TOKEN, "gw-01")["plan"] == "ntrip"
    assert len(session.requests) == 2 and clock.sleeps == [2]
    assert cl.activation_waited == 2


def test_not_activated_until_the_timeout_then_one_line():
    cl, session, clock = activation_client([FakeResponse(200, NOT_ACTIVATED)] * 20, 60)
    with pytest.raises(ZtpError, match="not activated yet") as exc:
        cl.fetch(TOKEN, "gw-01")
    assert clock.sleeps == [2, 4, 8, 15, 15, 15, 1]  # never past the timeout
    assert sum(clock.sleeps) == 60 and len(session.requests) == 8
    assert "8 times within activation_timeout=60 s" in str(exc.value) and "\n" not in str(exc.value)


def test_activation_timeout_zero_fails_at_the_first_answer():
    cl, session, clock = activation_client([FakeResponse(200, NOT_ACTIVATED)], 0)
    with pytest.raises(ZtpError, match=r"not activated yet \(ZTP returned no credentials\); activate it"):
        cl.fetch(TOKEN, "gw-01")
    assert len(session.requests) == 1 and clock.sleeps == []


def test_transient_errors_inside_the_activation_wait_use_the_retry_policy():
    cl, session, clock = activation_client(
        [FakeResponse(200, NOT_ACTIVATED), FakeResponse(503), FakeResponse(200, NTRIP_OK)], 10
    )
    assert cl.fetch(TOKEN, "gw-01")["service"] == "ntrip"
    assert clock.sleeps == [2, 0.75]  # activation wait, then the jittered backoff of the 503
    assert len(session.requests) == 3


def test_other_errors_are_not_retried_as_activation():
    cl, session, clock = activation_client([FakeResponse(200, b"{")], 60)
    with pytest.raises(ZtpError, match="malformed JSON"):
        cl.fetch(TOKEN, "gw-01")
    assert len(session.requests) == 1 and clock.sleeps == []
