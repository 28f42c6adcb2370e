"""Unit: ntrip.port / tls / allow_plain_auth resolution (Contract 2): the TLS port is never derived from the port."""

from __future__ import annotations

import json

import pytest
from pointperfect_forwarder import config

NTRIP = {"host": "ppntrip.services.u-blox.com", "port": 2101, "mountpoint": "NEAR-SPARTN", "username": "u"}


def _load(tmp_path, ntrip: dict | None = None, creds_ntrip: dict | None = None, **top):
    creds = {"format": 1, "plan": "ntrip", "mqtt": None, "ntrip": {**NTRIP, "password": "p", **(creds_ntrip or {})}}
    (tmp_path / "credentials.json").write_text(json.dumps(creds))
    cfg = {"credentials_file": str(tmp_path / "credentials.json"), "input": "ntrip", "ntrip": ntrip or {}, **top}
    path = tmp_path / "forwarder.json"
    path.write_text(json.dumps(cfg))
    return config.load(str(path))


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
