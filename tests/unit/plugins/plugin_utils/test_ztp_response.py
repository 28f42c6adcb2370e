"""Unit tests of the ZTP response parser: both shapes, topics/regions/plan derivation, validation errors."""

import contextlib
import copy
import datetime as dt
import json

import pytest
from ansible_collections.gnss.pointperfect.plugins.module_utils import _credentials as c
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _ztp_response as r
from cryptography import x509 as cx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.ztp_samples import KEY_A, KEY_B, mqtt_body, ntrip_body, rtke_ip_body, xplr_body


def view_of(model):
    """The module's RETURN view of what a model writes (credentials.json)."""
    return c.public_view(r.credentials_dict(model, "gw-01", "gw-01", "/etc/pointperfect"))


def test_mqtt_shape(pki):
    m = r.parse_body(json.dumps(mqtt_body(pki)).encode())
    assert m["plan"] == "ip"
    assert m["service"] == "mqtt"
    assert m["client_id"] == "9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f"
    assert m["broker_host"] == "pp.services.u-blox.com"
    assert m["broker_port"] == 8883
    assert m["regions"] == ["eu"]
    assert m["topics"] == {
        "keys": "/pp/ubx/0236/ip",
        "corrections": {"eu": "/pp/ip/eu"},
        "assistnow": "/pp/ubx/mga",
        "frequencies": None,
    }
    assert m["ntrip"] is None
    assert m["certificate_not_after"] == pki["not_after"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(m["fingerprint"].split(":")) == 32
    assert m["dynamickeys"]["next"]["value"] == KEY_B
    assert c.keys_end_ms(m["dynamickeys"]) == 1663977582000 + 2419199999


def test_ntrip_shape_port_string_and_int():
    for port in ("2101", 2101, " 2101 "):
        m = r.parse_body(json.dumps(ntrip_body(port)))
        assert m["plan"] == "ntrip"
        assert m["service"] == "ntrip"
        assert m["ntrip"] == {
            "host": "ppntrip.services.u-blox.com",
            "port": 2101,
            "tls_port": 2102,
            "mountpoint": "NEAR-RTCM",
            "username": "user-1",
            "password": "s3cret-pass",
        }
        assert m["client_id"] is None
        assert m["certificate_pem"] is None
        assert m["topics"] == {"keys": None, "corrections": {}, "assistnow": None, "frequencies": None}
        assert m["regions"] == []


@pytest.mark.parametrize(
    ("host", "port", "tls"),
    [
        ("ppntrip.services.u-blox.com", "2101", 2102),
        ("PPNTRIP.services.u-blox.com.", 2101, 2102),
        ("ppntrip.services.u-blox.com", 2102, None),  # only the known plain port has a known TLS twin
        ("127.0.0.1", "2101", None),
        ("caster.example.com", 2101, None),
        ("services.u-blox.com.evil.example", 2101, None),
    ],
)
def test_tls_port_only_for_the_u_blox_caster(host, port, tls):
    body = ntrip_body(port)
    body["rtcmCredentials"]["endpoint"] = host
    m = r.parse_body(json.dumps(body))
    assert m["ntrip"]["tls_port"] == tls
    assert m["ntrip"]["port"] == int(port)
    assert view_of(m)["ntrip"]["tls"] == tls


def test_ntrip_without_flags_is_ntrip_plan():
    body = ntrip_body()
    del body["supportsMqtt"], body["supportsLband"]
    assert r.parse_body(json.dumps(body))["plan"] == "ntrip"


def test_mqtt_plan_with_rtcm_credentials_uses_ntrip_service(pki):
    body = mqtt_body(pki, rtcmCredentials=ntrip_body()["rtcmCredentials"])
    m = r.parse_body(json.dumps(body))
    assert (m["plan"], m["service"]) == ("ip", "ntrip")
    assert m["certificate_pem"] is not None and m["ntrip"]["tls_port"] == 2102


@pytest.mark.parametrize(
    ("mqtt", "lband", "plan", "keys"),
    [
        (True, False, "ip", "/pp/ubx/0236/ip"),
        (False, True, "lband", "/pp/ubx/0236/Lb"),
        (True, True, "ip+lband", "/pp/ubx/0236/Lb"),
    ],
)
def test_plan_from_flags_and_path_only_subscriptions(pki, mqtt, lband, plan, keys):
    subs = [
        {"description": "L-band correction topic for US region", "path": "/pp/Lb/us"},
        {"description": "IP geographic area definition topic for US region", "path": "/pp/ip/us/gad"},
        {"path": "/pp/ubx/0236/Lb;/pp/ubx/0236/ip;/pp/ip/us"},
        {"path": "/pp/ubx/mga;/pp/ubx/mga/updates"},
        {"description": "JSON key distribution topic", "path": "/pp/key/ip"},
        {"path": "pp/ip/L2N5375E00900/dict"},
    ]
    m = r.parse_body(json.dumps(mqtt_body(pki, supportsMqtt=mqtt, supportsLband=lband, subscriptions=subs)))
    assert m["plan"] == plan
    assert m["regions"] == ["us"]
    assert m["topics"]["keys"] == keys
    assert m["topics"]["assistnow"] == "/pp/ubx/mga"
    assert (
        m["topics"]["corrections"]
        == {
            "ip": {"us": "/pp/ip/us"},
            "ip+lband": {"us": "/pp/Lb/us"},
            "lband": {},  # L-band only: the corrections come over the satellite
        }[plan]
    )
    assert m["topics"]["frequencies"] is None


def test_regions_from_description_and_several_regions(pki):
    subs = [
        {"description": "IP correction topic for EU region", "path": "/pp/ip/eu"},
        {"description": "IP correction topic for US region", "path": "/pp/ip/us"},
    ]
    m = r.parse_body(json.dumps(mqtt_body(pki, subscriptions=subs)))
    assert m["regions"] == ["eu", "us"]
    assert m["topics"]["corrections"] == {"eu": "/pp/ip/eu", "us": "/pp/ip/us"}


def test_xplr_sample_ip_plus_lband(pki):
    """u-blox/XPLR-HPG-software XPLR-HPG-SW/bin/emuZtpResponse.json: four regions, Japan by name, ';' entries."""
    m = r.parse_body(json.dumps(xplr_body(pki)))
    assert m["plan"] == "ip+lband"
    assert m["regions"] == ["au", "eu", "jp", "us"]
    assert m["topics"] == {
        "keys": "/pp/ubx/0236/Lb",
        "corrections": {"au": "/pp/Lb/au", "eu": "/pp/Lb/eu", "jp": "/pp/Lb/jp", "us": "/pp/Lb/us"},
        "assistnow": "/pp/ubx/mga",
        "frequencies": "/pp/frequencies/Lb",
    }
    assert m["dynamickeys"]["next"]["duration"] == 2505599999
    assert c.keys_end_ms(m["dynamickeys"]) == 1671235182000 + 2505599999


def test_rtke_like_ip_plan_five_regions(pki):
    m = r.parse_body(json.dumps(rtke_ip_body(pki)))
    assert (m["plan"], m["regions"]) == ("ip", ["au", "eu", "jp", "kr", "us"])
    assert m["topics"]["corrections"] == {r_: "/pp/ip/" + r_ for r_ in ("au", "eu", "jp", "kr", "us")}
    assert m["topics"]["keys"] == "/pp/ubx/0236/ip" and m["topics"]["frequencies"] is None


@pytest.mark.parametrize(
    ("subs", "regions", "corrections"),
    [
        # path-only entries, no description at all
        ([{"path": "/pp/ubx/0236/ip;/pp/ip/eu;/pp/ip/us;/pp/ip/us/gad"}], ["eu", "us"], None),
        # no leading slash: kept as the service wrote it
        ([{"path": "pp/ip/kr"}, {"path": "pp/ip/kr/hpac"}], ["kr"], {"kr": "pp/ip/kr"}),
        # only sub-streams: the top-level topic is their parent
        ([{"path": "/pp/ip/au/gad;/pp/ip/au/ocb"}], ["au"], {"au": "/pp/ip/au"}),
        # a region named only in a description (the path does not carry it)
        (
            [
                {"description": "IP correction topic for EU region", "path": "/pp/ip/eu"},
                {"description": "IP correction topic for Japan region", "path": "/pp/ip/japan-east"},
            ],
            ["eu", "jp"],
            {"eu": "/pp/ip/eu", "jp": "/pp/ip/japan-east"},
        ),
        # a sub-stream description names Japan; the top-level topic follows the pattern
        (
            [{"description": "IP GNSS clock topic for Japan region", "path": "/pp/ip/tokyo-clock"}],
            ["jp"],
            {"jp": "/pp/ip/jp"},
        ),
        # path names the region by its long name; either case of the stream kind
        ([{"path": "/pp/IP/Japan"}], ["jp"], {"jp": "/pp/IP/Japan"}),
        # localized tiles, JSON keys and unrelated topics are no regions
        ([{"path": "pp/ip/L2N5375E00900/dict;/pp/key/ip;/pp/ubx/mga/updates"}], [], {}),
        ([], [], {}),
    ],
)
def test_every_plausible_subscription_form(pki, subs, regions, corrections):
    m = r.parse_body(json.dumps(mqtt_body(pki, subscriptions=subs)))
    assert m["regions"] == regions
    assert m["topics"]["corrections"] == (corrections or {g: "/pp/ip/" + g for g in regions})
    assert set(m["topics"]["corrections"]) == set(m["regions"])


def test_mixed_streams_prefer_the_plan_kind_and_fall_back(pki):
    subs = [{"path": "/pp/ip/eu;/pp/Lb/us"}]
    ip = r.parse_body(json.dumps(mqtt_body(pki, subscriptions=subs)))
    assert (ip["regions"], ip["topics"]["corrections"]) == (["eu"], {"eu": "/pp/ip/eu"})
    both = r.parse_body(json.dumps(mqtt_body(pki, subscriptions=subs, supportsLband=True)))
    assert (both["regions"], both["topics"]["corrections"]) == (["us"], {"us": "/pp/Lb/us"})
    only_ip = [{"description": "IP correction topic for KR region", "path": "/pp/ip/kr"}]
    both = r.parse_body(json.dumps(mqtt_body(pki, subscriptions=only_ip, supportsLband=True)))
    assert (both["regions"], both["topics"]["corrections"]) == (["kr"], {"kr": "/pp/ip/kr"})


def test_lband_only_plan_has_keys_and_frequencies_but_no_correction_topic(pki):
    subs = [
        {"description": "L-band key distribution topic", "path": "/pp/ubx/0236/Lb"},
        {"description": "JSON key distribution topic", "path": "/pp/key/Lb"},
        {"description": "L-band frequencies topic", "path": "/pp/frequencies/Lb"},
        {"path": "/pp/ubx/mga;/pp/ubx/mga/updates"},
    ]
    m = r.parse_body(json.dumps(mqtt_body(pki, supportsMqtt=False, supportsLband=True, subscriptions=subs)))
    assert m["plan"] == "lband" and m["regions"] == []
    assert m["topics"] == {
        "keys": "/pp/ubx/0236/Lb",
        "corrections": {},
        "assistnow": "/pp/ubx/mga",
        "frequencies": "/pp/frequencies/Lb",
    }


def test_key_topic_from_its_description(pki):
    subs = [{"description": "IP key distribution topic", "path": "/pp/ubx/0236/ip2"}, {"path": "/pp/ip/eu"}]
    assert r.parse_body(json.dumps(mqtt_body(pki, subscriptions=subs)))["topics"]["keys"] == "/pp/ubx/0236/ip2"


def test_no_flags_with_certificate_is_ip(pki):
    body = mqtt_body(pki)
    del body["supportsMqtt"], body["supportsLband"]
    assert r.parse_body(json.dumps(body))["plan"] == "ip"


@pytest.mark.parametrize(
    "body",
    [
        {"clientId": "x", "supportsMqtt": True, "brokerHost": "h"},
        {"clientId": "x", "certificate": "", "privateKey": ""},
        {"rtcmCredentials": None},
        {},
    ],
)
def test_not_activated(body):
    with pytest.raises(r.ZtpError, match="not activated yet"):
        r.parse_body(json.dumps(body))


@pytest.mark.parametrize("raw", [b"", b"{", b"<html>oops</html>", b"\xff\xfe", b'{"clientId": "x", "certificate": "-'])
def test_malformed_json(raw):
    with pytest.raises(r.ZtpResponseError, match="malformed JSON"):
        r.parse_body(raw)


@pytest.mark.parametrize("raw", [b"[]", b"null", b"42", b'"text"'])
def test_not_an_object(raw):
    with pytest.raises(r.ZtpResponseError, match="not a JSON object"):
        r.parse_body(raw)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.pop("clientId"), "missing field clientId"),
        (lambda b: b.pop("brokerHost"), "missing field brokerHost"),
        (lambda b: b.pop("privateKey"), "missing field privateKey"),
        (lambda b: b.update(clientId=42), "field clientId has the wrong type"),
        (lambda b: b.update(supportsMqtt="yes"), "field supportsMqtt has the wrong type"),
        (lambda b: b.update(subscriptions={"path": "/pp/ip/eu"}), "field subscriptions has the wrong type"),
        (lambda b: b.update(subscriptions=["/pp/ip/eu"]), r"subscriptions\[0\] has the wrong type"),
        (lambda b: b.update(subscriptions=[{"description": "x"}]), r"missing field subscriptions\[0\]\.path"),
        (lambda b: b["dynamickeys"]["current"].update(start="1661558382000"), "dynamickeys.current.start"),
        (lambda b: b["dynamickeys"]["next"].update(duration=True), "dynamickeys.next.duration"),
        (lambda b: b["dynamickeys"]["current"].update(value="abc"), "not 32 hex characters"),
        (lambda b: b.update(dynamickeys=[]), "field dynamickeys has the wrong type"),
        (
            lambda b: b.update(
                supportsMqtt=False,
                supportsLband=False,
                certificate=None,
                privateKey=None,
                rtcmCredentials={
                    "endpoint": "h",
                    "httpPort": "abc",
                    "userName": "u",
                    "password": "p",
                    "mountPoint": "M",
                },
            ),
            "httpPort is not a port number",
        ),
    ],
)
def test_wrong_fields(pki, mutate, message):
    body = copy.deepcopy(mqtt_body(pki))
    mutate(body)
    with pytest.raises(r.ZtpResponseError, match=message):
        r.parse_credentials(body)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("httpPort", 70000, "not a port number"),
        ("httpPort", True, "wrong type"),
        ("httpPort", None, "not a port number"),
        ("password", 5, "wrong type"),
        ("mountPoint", None, "missing field rtcmCredentials.mountPoint"),
    ],
)
def test_wrong_rtcm_fields(field, value, message):
    body = ntrip_body()
    body["rtcmCredentials"][field] = value
    with pytest.raises(r.ZtpResponseError, match=message):
        r.parse_credentials(body)


def test_rtcm_not_an_object():
    with pytest.raises(r.ZtpResponseError, match="rtcmCredentials has the wrong type"):
        r.parse_credentials({"rtcmCredentials": "user:pass"})


def test_broken_certificate_pem(pki):
    body = mqtt_body(pki, certificate="-----BEGIN CERTIFICATE-----\nMIIDbroken\n-----END CERTIFICATE-----\n")
    with pytest.raises(r.ZtpResponseError, match="not a valid PEM certificate"):
        r.parse_credentials(body)


def test_broken_key_pem_never_echoes_key(pki):
    broken = pki["key"][:200]
    with pytest.raises(r.ZtpResponseError, match="not a valid unencrypted PEM key") as exc:
        r.parse_credentials(mqtt_body(pki, privateKey=broken))
    assert broken[40:80] not in str(exc.value)


def test_key_certificate_mismatch(pki):
    with pytest.raises(r.ZtpResponseError, match="does not match its certificate") as exc:
        r.parse_credentials(mqtt_body(pki, privateKey=pki["other_key"]))
    assert "PRIVATE KEY" not in str(exc.value)


def test_certificate_with_both_plan_flags_false_is_an_error(pki):
    with pytest.raises(r.ZtpResponseError, match="no plan"):
        r.parse_credentials(mqtt_body(pki, supportsMqtt=False, supportsLband=False))


def test_credentials_document_contract(pki):
    m = r.parse_credentials(mqtt_body(pki))
    raw = r.credentials_document(m, "gw-01", "gw-01", "/etc/pointperfect/")
    assert raw.endswith(b"}\n")
    doc = json.loads(raw)
    assert list(doc) == sorted(doc)
    assert raw == (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    assert doc["format"] == 1
    assert doc["mqtt"] == {
        "host": "pp.services.u-blox.com",
        "port": 8883,
        "client_id": m["client_id"],
        "certificate": "/etc/pointperfect/client.crt",
        "private_key": "/etc/pointperfect/client.key",
    }
    assert doc["ntrip"] is None
    assert doc["regions"] == ["eu"]
    assert doc["topics"] == {
        "keys": "/pp/ubx/0236/ip",
        "corrections": {"eu": "/pp/ip/eu"},
        "assistnow": "/pp/ubx/mga",
        "frequencies": None,
    }
    assert doc["dynamickeys"]["current"]["value"] == KEY_A
    # identical input gives identical bytes
    assert r.credentials_document(r.parse_credentials(mqtt_body(pki)), "gw-01", "gw-01", "/etc/pointperfect") == raw


def test_public_view_has_no_secrets(pki):
    m = r.parse_credentials(mqtt_body(pki, rtcmCredentials=ntrip_body()["rtcmCredentials"]))
    view = json.dumps(view_of(m))
    for secret in ("s3cret-pass", KEY_A, KEY_B, "PRIVATE KEY", "user-1"):
        assert secret not in view
    assert view_of(m)["ntrip"] == {
        "host": "ppntrip.services.u-blox.com",
        "port": 2101,
        "mountpoint": "NEAR-RTCM",
        "tls": 2102,
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "clientId",
        "certificate",
        "privateKey",
        "brokerHost",
        "supportsMqtt",
        "supportsLband",
        "dynamickeys",
        "subscriptions",
        "rtcmCredentials",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_fuzz_raw_bodies_raise_only_ztp_error(raw):
    with contextlib.suppress(r.ZtpError):
        r.parse_body(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(field_names, json_values, max_size=6), st.booleans())
def test_fuzz_mutated_bodies_raise_only_ztp_error(pki, mutation, keep_valid_pair):
    body = mqtt_body(pki) if keep_valid_pair else ntrip_body()
    body.update(mutation)
    try:
        r.parse_body(json.dumps(body))
    except r.ZtpError as e:
        assert "\n" not in str(e)


# ---------------------------------------------------------------- hostile values (issue 13)

HOSTILE_TEXT = ["a\r\nb", "ab\n", "a\x00b", "a\x1b[31mb", "$(reboot)", "../../etc/x", "x" * 100_000, "a b", " abc"]


def _rtcm(body):
    return body["rtcmCredentials"]


@pytest.mark.parametrize("value", [*HOSTILE_TEXT, "-bad.example", "a..b", "a" * 64 + ".com", "1.2.3.4:5", "[::1]"])
@pytest.mark.parametrize("field", ["brokerHost", "endpoint"])
def test_hosts_strict(pki, field, value):
    body = mqtt_body(pki, rtcmCredentials=ntrip_body()["rtcmCredentials"])
    (body if field == "brokerHost" else _rtcm(body))[field] = value
    with pytest.raises(r.ZtpResponseError, match=f"field .*{field} is not a host name") as exc:
        r.parse_credentials(body)
    assert value not in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("host", ["pp.services.u-blox.com", "127.0.0.1", "::1", "fe80::1", "a.b.", "x" * 63 + ".io"])
def test_hosts_accepted(host):
    body = ntrip_body()
    body["rtcmCredentials"]["endpoint"] = host
    assert r.parse_credentials(body)["ntrip"]["host"] == host


@pytest.mark.parametrize(
    ("field", "value"),
    [("mountPoint", v) for v in [*HOSTILE_TEXT, "a" * 101, "MP/x", "MP:x"]]
    + [("userName", v) for v in [*HOSTILE_TEXT, "u:p", "u" * 257, "üser"]]
    + [("password", v) for v in ["a\r\nb", "a\x00b", "a\x1b[31m", "p" * 257, "\x7f"]],
)
def test_ntrip_values_strict_and_never_echoed(field, value):
    body = ntrip_body()
    body["rtcmCredentials"][field] = value
    with pytest.raises(r.ZtpResponseError, match=f"rtcmCredentials.{field}") as exc:
        r.parse_credentials(body)
    assert value not in str(exc.value) and "\n" not in str(exc.value) and "\x1b" not in str(exc.value)


def test_short_and_symbol_passwords_accepted():
    for pw in ("p", "$(x) ../ ;|&'\"", "pässwörd"):
        body = ntrip_body()
        body["rtcmCredentials"]["password"] = pw
        assert r.parse_credentials(body)["ntrip"]["password"] == pw


@pytest.mark.parametrize("value", [*HOSTILE_TEXT, "c" * 129, "id/x"])
def test_client_id_strict(pki, value):
    with pytest.raises(r.ZtpResponseError, match="field clientId is not a client id"):
        r.parse_credentials(mqtt_body(pki, clientId=value))


@pytest.mark.parametrize(
    "path", ["/pp/ip/eu\r\n", "/pp/ip/$(x)", "/pp/../ip/eu", "/pp/ip/#", "/pp/ip/+", "/pp/" + "x" * 300, "/pp/\x1b[0m"]
)
def test_topics_strict(pki, path):
    with pytest.raises(r.ZtpResponseError, match=r"subscriptions\[0\]\.path is not a list of MQTT topics"):
        r.parse_credentials(mqtt_body(pki, subscriptions=[{"description": "x", "path": path}]))


@pytest.mark.parametrize("port", ["65536", 0, -1, "0", "99999", 10**30, 2101.0, "2101\n"])
def test_port_bounds(port):
    with pytest.raises(r.ZtpResponseError, match="httpPort"):
        r.parse_credentials(ntrip_body(port))


def test_port_65535_has_no_tls_port_beyond_the_range():
    m = r.parse_credentials(ntrip_body("65535"))
    assert m["ntrip"]["port"] == 65535 and m["ntrip"]["tls_port"] is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("start", -1, "start is not a time"),
        ("start", 10**30, "start is not a time"),
        ("start", 1262304000000 - 1, "start is not a time"),
        ("start", 4102444800000, "start is not a time"),
        ("duration", 0, "duration is not between"),
        ("duration", 3599999, "duration is not between"),
        ("duration", 400 * 86400000 + 1, "duration is not between"),
        ("duration", -5, "duration is not between"),
    ],
)
def test_dynamic_key_bounds(pki, key, value, message):
    body = mqtt_body(pki)
    body["dynamickeys"]["current"][key] = value
    with pytest.raises(r.ZtpResponseError, match=message):
        r.parse_credentials(body)


def _cert(key, days=365, not_before_days=-1, cn="c"):
    now = dt.datetime.now(dt.timezone.utc)
    name = cx.Name([cx.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        cx.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(cx.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=not_before_days))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key, fmt="TraditionalOpenSSL"):
    return key.private_bytes(
        serialization.Encoding.PEM, getattr(serialization.PrivateFormat, fmt), serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def keys():
    return {
        "rsa1024": rsa.generate_private_key(public_exponent=65537, key_size=1024),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p224": ec.generate_private_key(ec.SECP224R1()),
        "ser": serialization,
    }


def test_certificate_defects(pki, keys):
    key_a = serialization.load_pem_private_key(pki["key"].encode(), None)
    cases = [
        (_cert(key_a, days=-1, not_before_days=-10), pki["key"], "expired"),
        (_cert(key_a, days=30, not_before_days=1), pki["key"], "not valid before"),
        (_cert(keys["rsa1024"]), _key_pem(keys["rsa1024"]), "RSA key of 1024 bits"),
        (_cert(keys["p224"]), _key_pem(keys["p224"]), "EC key of 224 bits"),
        (pki["cert"] + "junk" * 100, pki["key"], "not exactly one PEM block"),
        (pki["cert"] + pki["key"], pki["key"], "not exactly one PEM block"),
        (pki["cert"] + pki["other_cert"], pki["key"], "not exactly one PEM block"),
        (pki["cert"], pki["key"] + "\x1b[31m", "not exactly one PEM block"),
        (pki["cert"] + "x" * 20_000_000, pki["key"], "larger than 16 KiB"),
    ]
    for cert, key, message in cases:
        with pytest.raises(r.ZtpResponseError, match=message) as exc:
            r.parse_credentials(mqtt_body(pki, certificate=cert, privateKey=key))
        assert "\n" not in str(exc.value) and "PRIVATE" not in str(exc.value)


def test_certificate_within_clock_skew_and_ec_p256_accepted(pki, keys):
    key_a = serialization.load_pem_private_key(pki["key"].encode(), None)
    soon = r.parse_credentials(mqtt_body(pki, certificate=_cert(key_a, not_before_days=2 / 1440)))
    assert soon["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")
    m = r.parse_credentials(mqtt_body(pki, certificate=_cert(keys["p256"]), privateKey=_key_pem(keys["p256"], "PKCS8")))
    assert m["private_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)
    with pytest.raises(r.ZtpResponseError, match="expired"):
        r.parse_credentials(mqtt_body(pki), now=later)


def test_pem_written_is_re_serialized(pki):
    m = r.parse_credentials(mqtt_body(pki, certificate="\n\n" + pki["cert"] + "\n\n  ", privateKey=pki["key"] + "\n"))
    assert m["certificate_pem"] == pki["cert"]  # exactly the one certificate, re-serialized
    assert m["private_key_pem"] == pki["key"] and m["private_key_pem"].startswith("-----BEGIN RSA PRIVATE KEY-----")


def test_more_regions_than_the_forwarder_accepts_are_refused(pki):
    many = [{"path": f"/pp/ip/{a}{b}"} for a in "abcdefgh" for b in "abcdefgh"]  # 64 two-letter regions
    assert len(r.parse_body(json.dumps(mqtt_body(pki, subscriptions=many)))["regions"]) == c.REGIONS_MAX
    more = [*many, {"path": "/pp/ip/zz"}]
    with pytest.raises(r.ZtpResponseError, match="more than 64 regions"):
        r.parse_body(json.dumps(mqtt_body(pki, subscriptions=more)))
