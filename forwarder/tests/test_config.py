"""config.py: forwarder.json validation (one-line errors naming the field) and its resolution against
credentials.json: MQTT, NTRIP ports and TLS (Contract 2), regions, L-band."""

from __future__ import annotations

import json

import pytest
from pointperfect_forwarder import config


def _files(tmp_path, cfg: dict, creds_extra: dict | None = None):
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_text("cert")
    key.write_text("key")
    creds = {
        "format": 1,
        "plan": "ip",
        "client_id": "cid",
        "certificate_not_after": "2027-11-25T21:00:00Z",
        "mqtt": {
            "host": "pp.example",
            "port": 8883,
            "client_id": "cid",
            "certificate": str(cert),
            "private_key": str(key),
        },
        "topics": {"keys": "/pp/ubx/0236/ip", "corrections": ["/pp/ip/eu"], "assistnow": "/pp/ubx/mga"},
        "ntrip": {
            "host": "nt.example",
            "port": 2101,
            "tls_port": 2102,
            "mountpoint": "NEAR-SPARTN",
            "username": "u",
            "password": "p",
        },
        "dynamickeys": None,
        **(creds_extra or {}),
    }
    (tmp_path / "credentials.json").write_text(json.dumps(creds))
    path = tmp_path / "forwarder.json"
    path.write_text(json.dumps({"credentials_file": str(tmp_path / "credentials.json"), **cfg}))
    return str(path)


def test_defaults_and_credentials(tmp_path):
    s = config.load(_files(tmp_path, {}))
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.client_id, s.mqtt.keepalive) == ("pp.example", 8883, "cid", 60)
    assert s.mqtt.corrections == {"eu": "/pp/ip/eu"} and s.mqtt.assistnow_topic is None
    assert (s.regions, s.region, s.lband_mode) == (["eu"], None, "off")
    assert s.output == {**config.DEFAULTS["output"]}
    assert s.backoff == {"initial": 1.0, "max": 60.0, "reset_after": 60.0}
    assert s.health["metrics_address"] == "127.0.0.1" and s.health["metrics_port"] == 9661
    assert s.certificate_not_after == 1827176400.0


def test_overrides(tmp_path):
    us = {"topics": {"keys": "/pp/ubx/0236/ip", "corrections": {"eu": "/pp/ip/eu", "us": "/pp/ip/us"}}}
    s = config.load(_files(tmp_path, {"mqtt": {"region": "us", "assistnow": True, "port": 1883}}, us))
    assert s.region == "us" and s.mqtt.assistnow_topic == "/pp/ubx/mga"
    assert s.mqtt.port == 1883
    s = config.load(_files(tmp_path, {"input": "ntrip"}))
    assert (s.ntrip.host, s.ntrip.port, s.ntrip.tls, s.ntrip.version) == ("nt.example", 2102, True, 2)
    plain = {"tls": False, "allow_plain_auth": True, "mountpoint": "NEAR-RTCM"}
    s = config.load(_files(tmp_path, {"input": "ntrip", "ntrip": plain}))
    assert (s.ntrip.port, s.ntrip.mountpoint) == (2101, "NEAR-RTCM")
    s = config.load(_files(tmp_path, {"input": "ntrip", "ntrip": {"port": 9999}}))
    assert s.ntrip.port == 9999
    assert "p" in s.secrets()


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"output": {"type": "tcp"}}, "output.host: must be a host name or IP address"),
        ({"output": {"type": "file", "path": None}}, "output.path: must be a non-empty string"),
        ({"output": {"queue_bytes": 10}}, "output.queue_bytes: must be between 4096 and 268435456"),
        ({"receiver": {"port": "SPI"}}, "receiver.port: must be one of USB, UART1, UART2"),
        ({"backoff": {"initial": 10, "max": 5}}, "backoff.max: must be >= backoff.initial"),
        ({"ntrip": {"fixed_position": {"lat": 91, "lon": 0}}}, "ntrip.fixed_position.lat: must be between -90 and 90"),
        ({"mqtt": {"keepalive": True}}, "mqtt.keepalive: must be an integer"),
        ({"health": {"metrics_port": 70000}}, "health.metrics_port: must be between 1 and 65535"),
        ({"health": {"metrics_port": 0}}, "health.metrics_port: must be between 1 and 65535"),
        ({"log_level": "loud"}, "log_level: must be one of debug, info, warning, error"),
        ({"mqtt": []}, "mqtt: must be an object"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file: /nonexistent/ca.pem: no such file"),
    ],
)
def test_errors_name_the_field(tmp_path, cfg, message):
    with pytest.raises(config.ConfigError) as err:
        config.load(_files(tmp_path, cfg))
    assert str(err.value) == f"config error: {message}"
    assert "\n" not in str(err.value)


def test_credentials_errors(tmp_path):
    with pytest.raises(config.ConfigError, match=r"credentials.dynamickeys.current.value: must be 32 hex"):
        config.load(_files(tmp_path, {}, {"dynamickeys": {"current": {"start": 1, "duration": 1, "value": "x"}}}))
    with pytest.raises(config.ConfigError, match=r"credentials.mqtt: null"):
        config.load(_files(tmp_path, {}, {"mqtt": None}))
    path = _files(tmp_path, {})
    (tmp_path / "client.key").unlink()
    with pytest.raises(config.ConfigError, match=r"credentials.mqtt.private_key: .*client.key: no such file"):
        config.load(path)
    (tmp_path / "forwarder.json").write_text("{not json")
    with pytest.raises(config.ConfigError, match=r"config: .*invalid JSON at line 1"):
        config.load(path)


# --- ntrip.port / tls / allow_plain_auth: the TLS port is never derived from the port ---------------------------------

NTRIP = {"host": "ppntrip.services.u-blox.com", "port": 2101, "mountpoint": "NEAR-SPARTN", "username": "u"}


def _load(tmp_path, ntrip: dict | None = None, creds_ntrip: dict | None = None, **top):
    """Settings of an NTRIP plan: `ntrip` and `top` in forwarder.json, `creds_ntrip` over NTRIP in credentials.json."""
    creds = {"plan": "ntrip", "mqtt": None, "ntrip": {**NTRIP, "password": "p", **(creds_ntrip or {})}}
    return config.load(_files(tmp_path, {"input": "ntrip", "ntrip": ntrip or {}, **top}, creds))


def _error(tmp_path, *args, **kwargs) -> str:
    with pytest.raises(config.ConfigError) as err:
        _load(tmp_path, *args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.parametrize(
    ("ntrip", "creds", "port"),
    [
        ({}, {"tls_port": 2102}, 2102),  # tls: the credentials' TLS port
        ({}, {"tls_port": "2102"}, 2102),  # as a digit string too
        ({"port": 4443}, {"tls_port": 2102}, 4443),  # ntrip.port is the port to connect to
        ({"port": 4443}, {"tls_port": None}, 4443),  # and needs no TLS port in the credentials
        ({"tls": False, "allow_plain_auth": True}, {"tls_port": 2102}, 2101),  # plain: the credentials' port
        ({"tls": False, "allow_plain_auth": True}, {"port": "2101", "tls_port": None}, 2101),  # httpPort is a string
        ({"tls": False, "allow_plain_auth": True, "port": 9999}, {}, 9999),
    ],
)
def test_port_resolution(tmp_path, ntrip, creds, port):
    s = _load(tmp_path, ntrip, creds)
    assert s.ntrip.port == port
    assert s.input_endpoint() == f"ppntrip.services.u-blox.com:{port}"


@pytest.mark.parametrize("creds", [{"tls_port": None}, {}])
def test_tls_without_a_tls_port_is_an_error_not_port_plus_one(tmp_path, creds):
    msg = _error(tmp_path, {}, creds)
    assert msg == "config error: ntrip.port: set the caster's TLS port (u-blox: 2102)"


def test_bad_ports_name_the_field(tmp_path):
    assert (
        _error(tmp_path, {}, {"tls_port": 70000})
        == "config error: credentials.ntrip.tls_port: must be between 1 and 65535"
    )
    msg = _error(tmp_path, {"tls": False, "allow_plain_auth": True}, {"port": "x"})
    assert msg == "config error: credentials.ntrip.port: must be an integer"
    assert _error(tmp_path, {"port": 0}, {"tls_port": 2102}) == "config error: ntrip.port: must be between 1 and 65535"


def test_plain_tcp_needs_allow_plain_auth(tmp_path):
    msg = _error(tmp_path, {"tls": False}, {"tls_port": 2102})
    assert msg.startswith("config error: ntrip.tls: ")
    assert "clear text" in msg and "ntrip.allow_plain_auth" in msg
    s = _load(tmp_path, {"tls": False, "allow_plain_auth": True})
    assert (s.ntrip.tls, s.ntrip.allow_plain_auth) == (False, True)
    msg = _error(tmp_path, {"allow_plain_auth": "yes"}, {"tls_port": 2102})
    assert msg == "config error: ntrip.allow_plain_auth: must be true or false"


def test_defaults(tmp_path):
    assert config.DEFAULTS["ntrip"]["allow_plain_auth"] is False
    assert config.DEFAULTS["ntrip"]["port"] is None
    s = _load(tmp_path, {}, {"tls_port": 2102})
    assert (s.ntrip.tls, s.ntrip.allow_plain_auth) == (True, False)


# --- regions and L-band -----------------------------------------------------------------------------------------------

ALL = ["au", "eu", "jp", "kr", "us"]


def _plan_files(tmp_path, cfg: dict, topics: dict | None = None, regions: list | None = None, plan: str = "ip"):
    """`_files` for a `plan` with `topics` (default: a correction topic per region) and, if given, `regions`."""
    topics = topics or {"keys": "/pp/ubx/0236/ip", "corrections": {r: f"/pp/ip/{r}" for r in ALL}}
    return _files(tmp_path, cfg, {"plan": plan, "topics": topics, **({} if regions is None else {"regions": regions})})


def test_config_region_mapping_and_old_list_form(tmp_path):
    s = config.load(_plan_files(tmp_path, {}, regions=ALL))
    assert s.region is None and s.regions == ALL and s.mqtt.corrections["us"] == "/pp/ip/us"
    old = {"keys": "/pp/ubx/0236/ip", "corrections": ["/pp/ip/eu", "/pp/ip/us"]}
    s = config.load(_plan_files(tmp_path, {"mqtt": {"region": None}}, old))
    assert s.mqtt.corrections == {"eu": "/pp/ip/eu", "us": "/pp/ip/us"} and s.regions == ["eu", "us"]
    s = config.load(_plan_files(tmp_path, {"mqtt": {"region": "US"}}, old))
    assert s.region == "us"


def test_config_explicit_region_must_be_in_the_plan(tmp_path):
    with pytest.raises(config.ConfigError) as err:
        config.load(_plan_files(tmp_path, {"mqtt": {"region": "kr"}}, regions=["eu", "us"]))
    assert (
        str(err.value) == "config error: mqtt.region: 'kr' is not in this plan (eu, us): set it to one of them or auto"
    )
    topics = {"keys": "/pp/ubx/0236/ip", "corrections": {"eu": "/pp/ip/eu"}}
    with pytest.raises(config.ConfigError, match=r"^config error: mqtt.region: 'us' has no correction topic"):
        config.load(_plan_files(tmp_path, {"mqtt": {"region": "us"}}, topics, regions=["eu", "us"]))
    with pytest.raises(config.ConfigError, match=r"^config error: mqtt.region: must be auto or a region"):
        config.load(_plan_files(tmp_path, {"mqtt": {"region": "e u"}}))


def test_config_lband_and_fixed_position(tmp_path):
    lb = {"keys": "/pp/ubx/0236/Lb", "corrections": {}, "assistnow": None, "frequencies": None}
    s = config.load(_plan_files(tmp_path, {"receiver": {"source": "lband"}}, lb, regions=[], plan="lband"))
    assert s.lband_mode == "keys_only" and s.mqtt.corrections == {}
    assert s.mqtt.frequencies_topic == "/pp/frequencies/Lb"
    cfg = {"receiver": {"source": "lband"}, "lband": {"device": "/dev/ttyD9S", "port": "UART2"}}
    s = config.load(_plan_files(tmp_path, {**cfg, "fixed_position": {"lat": 39.7, "lon": -105.0}}, lb, plan="lband"))
    assert s.lband_mode == "d9s" and s.lband == {"device": "/dev/ttyD9S", "baudrate": 38400, "port": "UART2"}
    assert s.fixed_position == {"lat": 39.7, "lon": -105.0}
    s = config.load(_plan_files(tmp_path, {"ntrip": {"fixed_position": {"lat": 1, "lon": 2}}}))
    assert s.fixed_position == {"lat": 1, "lon": 2}  # the old place still counts
    with pytest.raises(config.ConfigError, match=r"no correction topic \(an L-band plan: set receiver.source lband\)"):
        config.load(_plan_files(tmp_path, {}, lb, plan="lband"))


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"lband": {"device": "/dev/x"}}, "lband.device: a NEO-D9S needs receiver.source lband"),
        (
            {"receiver": {"source": "lband"}, "lband": {"device": "/dev/ttyACM0"}},
            "lband.device: must not be output.device (the NEO-D9S has its own port)",
        ),
        ({"lband": {"port": "SPI"}}, "lband.port: must be one of USB, UART1, UART2"),
        ({"lband": {"baudrate": 0}}, "lband.baudrate: must be between 50 and 4000000"),
        ({"fixed_position": {"lat": 0, "lon": 181}}, "fixed_position.lon: must be between -180 and 180"),
        ({"fixed_position": {"lat": 0, "lon": 0, "h": 1}}, "fixed_position.h: unknown field"),
    ],
)
def test_config_lband_errors(tmp_path, cfg, message):
    with pytest.raises(config.ConfigError) as err:
        config.load(_plan_files(tmp_path, cfg))
    assert str(err.value) == f"config error: {message}"
