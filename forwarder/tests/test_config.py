"""Unit: forwarder.json validation (one-line errors naming the field) and resolution against credentials.json."""

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
