"""Unit tests of Contract 1 in code (_credentials.py): the value rules shared by the ztp plugin and the forwarder,
the secret-free views of credentials.json, the end of the newest key, ISO times and days left."""

import datetime as dt
import json
import os
from pathlib import Path

import pointperfect_forwarder._credentials as forwarder_credentials
import pytest
from ansible_collections.gnss.pointperfect.plugins.module_utils import _credentials as c

REPO = Path(__file__).resolve().parents[4]
KEY_HEX = "0123456789abcdef0123456789abcdef"

DOC = {
    "format": 1,
    "hardware_id": "gw-01",
    "given_name": "gateway one",
    "plan": "ip",
    "service": "ntrip",
    "client_id": "9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f",
    "certificate_not_after": "2027-11-25T21:00:00Z",
    "mqtt": {
        "host": "pp.services.u-blox.com",
        "port": 8883,
        "client_id": "9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f",
        "certificate": "/etc/pointperfect/client.crt",
        "private_key": "/etc/pointperfect/client.key",
    },
    "regions": ["eu", "us"],
    "topics": {"keys": "/pp/ubx/0236/ip", "corrections": {"eu": "/pp/ip/eu", "us": "/pp/ip/us"}, "assistnow": None},
    "ntrip": {
        "host": "ppntrip.services.u-blox.com",
        "port": 2101,
        "tls_port": 2102,
        "mountpoint": "NEAR-SPARTN",
        "username": "user-1",
        "password": "s3cret-pass",
    },
    "dynamickeys": {
        "current": {"start": 1663977582000, "duration": 2419199999, "value": KEY_HEX},
        "next": {"start": 1666396782000, "duration": 2419199999, "value": KEY_HEX[::-1]},
    },
}


def test_the_forwarder_imports_this_very_file_through_a_symlink():
    link = REPO / "forwarder" / "src" / "pointperfect_forwarder" / "_credentials.py"
    assert link.is_symlink()
    assert os.readlink(link) == "../../../plugins/module_utils/_credentials.py"  # relative: survives a copy
    assert link.resolve() == (REPO / "plugins" / "module_utils" / "_credentials.py").resolve()
    assert Path(forwarder_credentials.__file__).read_bytes() == Path(c.__file__).read_bytes()


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("pp.services.u-blox.com", True),
        ("pp.services.u-blox.com.", True),
        ("127.0.0.1", True),
        ("::1", True),
        ("a" * 63 + ".example", True),
        ("a" * 64 + ".example", False),  # a label is at most 63
        ("a." * 126 + "bb", False),  # 254 characters
        ("a.-b", False),
        ("a-.b", False),
        ("a..b", False),
        ("a_b", False),
        ("a b", False),
        ("host\r\nX: 1", False),
        ("[::1]", False),
        ("", False),
        (None, False),
        (5, False),
    ],
)
def test_valid_host(value, ok):
    assert c.valid_host(value) is ok


@pytest.mark.parametrize(
    ("value", "port"),
    [(1, 1), (65535, 65535), ("2101", 2101), (0, None), (65536, None), ("65536", None), (-1, None), (True, None)],
)
def test_port_number(value, port):
    assert c.port_number(value) == port


@pytest.mark.parametrize("value", [" 2101", "2101\r\n", "\uff18\uff18", "9" * 6, 8883.0, None, [8883]])
def test_port_number_refuses_what_is_no_port(value):
    assert c.port_number(value) is None


def test_mountpoint_and_password():
    assert c.valid_mountpoint("NEAR-SPARTN") and c.valid_mountpoint("m" * 100)
    for bad in ("m" * 101, "a/b", "NEAR SPARTN", "a\r\nb", "", None):
        assert not c.valid_mountpoint(bad)
    for ok in ("", "p", "$(x) ../ ;|&'\"", "pässwörd", "p" * 256):
        assert c.valid_password(ok)
    for bad in ("p" * 257, "a\x00b", "a\x1b[0m", "a\x9bb", "a\ud800b", None):
        assert not c.valid_password(bad)


def test_api_rules_are_stricter_than_the_file_rules():
    # user name: any printable ASCII without space and ':' in a file; no shell quoting from the API
    for value in ("$(reboot)", "`id`", "a\\b", "a'b", 'a"b', "../../etc/x"):
        assert c.valid_username(value) and not c.valid_username(value, api=True)
    assert c.valid_username("user-1", api=True)
    for bad in ("a b", "a:b", "a\tb", "", "u" * 257):
        assert not c.valid_username(bad) and not c.valid_username(bad, api=True)
    # client id: 256 in a file, 128 from the API
    assert c.valid_client_id("c" * 256) and not c.valid_client_id("c" * 257)
    assert c.valid_client_id("c" * 128, api=True) and not c.valid_client_id("c" * 129, api=True)
    assert not c.valid_client_id("id/x") and not c.valid_client_id("")
    # topics: no '..' level anywhere, no '.' level from the API
    assert c.valid_topic("/pp/./ip") and not c.valid_topic("/pp/./ip", api=True)
    for bad in ("/pp/../ip", "/pp/ip/#", "/pp/+/eu", "/pp/ip/eu\r\n", "/" + "t" * 256, ""):
        assert not c.valid_topic(bad) and not c.valid_topic(bad, api=True)


def test_plan_format_region_and_key_bounds():
    assert all(c.valid_plan(p) for p in ("ip", "lband", "ip+lband", "ntrip"))
    assert not c.valid_plan("IP") and not c.valid_plan("ip+")
    assert c.valid_format(1) and not any(c.valid_format(v) for v in (2, 1.0, True, "1", None))
    assert c.valid_region("eu") and c.valid_region("EU") and not c.valid_region("r" * 17) and not c.valid_region("e u")
    assert c.valid_key_start(c.KEY_START_MIN_MS) and not c.valid_key_start(c.KEY_START_MIN_MS - 1)
    assert not c.valid_key_start(c.KEY_START_MAX_MS) and c.valid_key_start(c.KEY_START_MAX_MS - 1)
    assert not c.valid_key_start(10**30) and not c.valid_key_start(True) and not c.valid_key_start(2e12)
    assert c.valid_key_duration(c.KEY_DURATION_MAX_MS) and not c.valid_key_duration(c.KEY_DURATION_MAX_MS + 1)
    assert not c.valid_key_duration(c.KEY_DURATION_MIN_MS - 1)
    assert c.valid_key_value(KEY_HEX) and not c.valid_key_value(KEY_HEX[:-1]) and not c.valid_key_value("zz" * 16)


@pytest.mark.parametrize(
    ("name", "code"),
    [("EU", "eu"), ("Japan", "jp"), ("JAPAN", "jp"), (" us ", "us"), ("KR", "kr"), ("xx", "xx"), ("Atlantis", None)],
)
def test_region_code(name, code):
    assert c.region_code(name) == code
    assert c.region_code(None) is None


def test_normalize_topics_reads_both_forms():
    old = {"keys": "/pp/ubx/0236/ip", "corrections": ["/pp/ip/eu", "/pp/ip/us"], "assistnow": "/pp/ubx/mga"}
    assert c.normalize_topics(old) == {
        "keys": "/pp/ubx/0236/ip",
        "corrections": {"eu": "/pp/ip/eu", "us": "/pp/ip/us"},
        "assistnow": "/pp/ubx/mga",
        "frequencies": None,
    }
    new = dict(old, corrections={"jp": "/pp/Lb/jp"}, frequencies="/pp/frequencies/Lb")
    assert c.normalize_topics(new) == new
    assert c.normalize_topics(None) == {"keys": None, "corrections": {}, "assistnow": None, "frequencies": None}
    assert c.normalize_topics({"corrections": "x"})["corrections"] == {}


def test_older_form_region_is_the_last_path_element_first_topic_wins():
    assert c.corrections_map(["/pp/ip/EU/", "/pp/Lb/eu", "/pp/ip/Japan", "", 5]) == {
        "eu": "/pp/ip/EU/",
        "jp": "/pp/ip/Japan",
    }


def test_keys_end_is_the_end_of_the_newest_key():
    assert c.keys_end_ms(DOC["dynamickeys"]) == 1666396782000 + 2419199999
    assert c.keys_end_ms({"current": DOC["dynamickeys"]["current"]}) == 1663977582000 + 2419199999
    assert c.keys_end_ms({"current": {"start": True, "duration": 1}}) is None
    assert c.keys_end_ms({"current": {"start": 1, "duration": "1"}}) is None
    assert c.keys_end_ms(None) is None and c.keys_end_ms([]) is None and c.keys_end_ms({"next": 5}) is None


def test_public_summary_holds_no_secret_and_the_view_is_the_same_from_either():
    summary = c.public_summary(DOC)
    dumped = json.dumps(summary)
    for secret in ("s3cret-pass", "user-1", KEY_HEX, KEY_HEX[::-1], "client.key"):
        assert secret not in dumped
    assert summary["keys_end_ms"] == 1666396782000 + 2419199999
    assert summary["ntrip"] == {
        "host": "ppntrip.services.u-blox.com",
        "port": 2101,
        "tls_port": 2102,
        "mountpoint": "NEAR-SPARTN",
    }
    assert summary["mqtt"] == {"host": "pp.services.u-blox.com", "port": 8883}
    assert {k: summary[k] for k in c.SUMMARY_FIELDS} == {k: DOC[k] for k in c.SUMMARY_FIELDS}
    view = c.public_view(DOC)
    assert view == c.public_view(summary)
    assert view["broker_host"] == "pp.services.u-blox.com" and view["broker_port"] == 8883
    ntrip = {"host": "ppntrip.services.u-blox.com", "port": 2101, "mountpoint": "NEAR-SPARTN", "tls": 2102}
    assert view["ntrip"] == ntrip
    assert view["topics"]["corrections"] == {"eu": "/pp/ip/eu", "us": "/pp/ip/us"}
    assert "s3cret-pass" not in json.dumps(view)


def test_public_views_of_a_bare_or_foreign_document():
    for doc in (dict(DOC, format=2), dict(DOC, format=True), [], None, {"hardware_id": "gw-01"}):
        assert c.public_summary(doc) is None
    view = c.public_view({"format": 1, "mqtt": None, "ntrip": None, "regions": "eu"})
    assert (view["broker_host"], view["ntrip"], view["regions"]) == (None, None, [])


def test_dumps_is_stable():
    raw = c.dumps(DOC)
    assert raw.endswith(b"}\n") and raw == c.dumps(json.loads(raw))
    assert raw.splitlines()[1] == b'  "certificate_not_after": "2027-11-25T21:00:00Z",'


def test_iso_times():
    ts = dt.datetime(2027, 11, 25, 21, 0, tzinfo=dt.timezone.utc).timestamp()
    assert c.iso(ts) == "2027-11-25T21:00:00Z"
    assert c.iso(dt.datetime(2027, 11, 25, 21, 0, tzinfo=dt.timezone.utc)) == "2027-11-25T21:00:00Z"
    for text in ("2027-11-25T21:00:00Z", "2027-11-25T22:00:00+01:00", "2027-11-25T21:00:00", " 2027-11-25T21:00:00z"):
        assert c.parse_iso(text) == ts
    assert c.parse_iso("2027-11-25T21:00:00Z", strict=True) == ts
    for text in ("2027-11-25", "2027-11-25T22:00:00+01:00", "2027-11-25T21:00:00.5Z", "nope"):
        assert c.parse_iso(text, strict=True) is None
    for bad in ("nope", "", None, 5):
        assert c.parse_iso(bad) is None and c.parse_iso(bad, strict=True) is None


def test_days_left():
    now = 1_800_000_000.0
    assert c.days_left(now + 10 * c.DAY - 1, now) == 9
    assert c.days_left(now - 1, now) == -1
    assert c.days_left(now + 1.5 * c.DAY, now, 2) == 1.5
    assert c.days_left(None, now) is None and c.days_left(None, now, 2) is None


@pytest.mark.parametrize(
    ("check", "rule", "values"),
    [
        ("_host", c.valid_host, ["pp.example", "a.-b", "a" * 64 + ".b", "::1", "a_b"]),
        ("_mountpoint", c.valid_mountpoint, ["NEAR-SPARTN", "a/b", "m" * 101]),
        ("_username", c.valid_username, ["user-1", "$(x)", "a:b", "a b"]),
        ("_password", c.valid_password, ["", "p w", "a\x00b", "p" * 257]),
        ("_client_id", c.valid_client_id, ["9f1c:2d", "c" * 256, "c" * 257, "a/b"]),
        ("_topic", c.valid_topic, ["/pp/ip/eu", "/pp/../eu", "/pp/#"]),
        ("_region", c.valid_region, ["eu", "EU", "r" * 17, "e u"]),
    ],
)
def test_the_forwarder_refuses_exactly_what_the_rule_refuses(check, rule, values):
    from pointperfect_forwarder import config  # noqa: PLC0415 - the forwarder side of the same rules

    for value in values:
        try:
            getattr(config, check)("credentials.x", value)
        except config.ConfigError:
            accepted = False
        else:
            accepted = True
        assert accepted is rule(value), (check, value)
