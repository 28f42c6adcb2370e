"""Unit: a hostile or broken credentials.json (whoever wrote it) and forwarder.json give exit 2 with the field named,
one line on stderr, never a traceback (issue 13)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pointperfect_forwarder import cli, config

SRC = Path(__file__).resolve().parents[1] / "src"
START = 1661558382000
DURATION = 2419199999

# --- the corpus ------------------------------------------------------------------------------------------------------

CONTROL = {
    "ctrl": "a\x01b",
    "del": "a\x7fb",
    "c1": "a\x9bb",
    "crlf": "NEAR-SPARTN HTTP/1.1\r\nX-Injected: 1",
    "lf": "a\nb",
    "cr": "a\rb",
    "nul": "a\x00b",
    "ansi": "\x1b[31mred\x1b[0m",
    "huge": "A" * 100_000,
    "surrogate": "a\ud800b",
}
INJECT = {"shell": "$(reboot)", "backtick": "`id`", "dotdot": "../../etc/passwd", "space": "a b", "empty": ""}
NESTED: object = {"a": [[[{"b": [1, {"c": None}]}]]]}
TYPES = {"list": ["x"], "object": {"x": 1}, "true": True, "int": 12, "float": 1.5, "nested": NESTED}
NUMBERS = {"huge": 10**30, "negative": -1, "e308": 1e308}
PORTS = {
    "zero": 0,
    "negative": -1,
    "65536": 65536,
    "65536str": "65536",
    "abc": "abc",
    "fullwidth": "\uff18\uff18\uff18\uff13",
    "huge": 10**30,
    "hugestr": "9" * 5000,
    "float": 8883.0,
    "true": True,
    "list": [8883],
    "crlf": "8883\r\n",
}


def _strings(*extra: dict, inject: bool = True, types: bool = True) -> dict:
    out = dict(CONTROL)
    if inject:
        out.update(INJECT)
    if types:
        out.update(TYPES)
        out.update(NUMBERS)
    for more in extra:
        out.update(more)
    return out


# field -> (where the error must point, input, hostile variants)
FIELDS: dict[tuple, tuple[str, str, dict]] = {
    ("mqtt", "host"): (
        "credentials.mqtt.host",
        "mqtt",
        _strings({"underscore": "a_b", "dash": "-x", "dots": "a..b", "long": "a" * 254}),
    ),
    ("mqtt", "port"): ("credentials.mqtt.port", "mqtt", PORTS),
    ("mqtt", "client_id"): ("credentials.mqtt.client_id", "mqtt", _strings({"long": "c" * 257, "space": "a b"})),
    ("client_id",): ("credentials.client_id", "mqtt", _strings({"long": "c" * 257})),
    ("mqtt", "certificate"): ("credentials.mqtt.certificate", "mqtt", _strings({"relative": "client.crt"})),
    ("mqtt", "private_key"): ("credentials.mqtt.private_key", "mqtt", _strings({"relative": "client.key"})),
    ("topics", "keys"): ("credentials.topics.keys", "mqtt", _strings({"hash": "/pp/#", "plus": "/pp/+/x"})),
    ("topics", "assistnow"): ("credentials.topics.assistnow", "mqtt", _strings({"long": "/" + "t" * 256})),
    ("topics", "frequencies"): ("credentials.topics.frequencies", "mqtt", _strings({"hash": "#"})),
    ("topics", "corrections", "eu"): ("credentials.topics.corrections", "mqtt", _strings({"plus": "/pp/ip/+"})),
    ("regions", 0): ("credentials.regions", "mqtt", _strings({"long": "r" * 17})),
    ("plan",): ("credentials.plan", "mqtt", _strings({"upper": "IP"})),
    ("certificate_not_after",): ("credentials.certificate_not_after", "mqtt", _strings({"date": "2027-11-25"})),
    ("format",): ("credentials.format", "mqtt", {"two": 2, "str": "1", "true": True, "float": 1.0, **NUMBERS}),
    ("ntrip", "host"): ("credentials.ntrip.host", "ntrip", _strings({"underscore": "a_b", "long": "a" * 254})),
    ("ntrip", "port"): ("credentials.ntrip.port", "ntrip", PORTS),
    ("ntrip", "tls_port"): ("credentials.ntrip.tls_port", "ntrip", PORTS),
    ("ntrip", "mountpoint"): ("credentials.ntrip.mountpoint", "ntrip", _strings({"slash": "a/b", "long": "m" * 101})),
    # a user name is any printable ASCII without whitespace and ':' (the Basic auth separator)
    ("ntrip", "username"): (
        "credentials.ntrip.username",
        "ntrip",
        _strings({"colon": "a:b", "long": "u" * 257, "space": "a b", "empty": "", "tab": "a\tb"}, inject=False),
    ),
    # any printable character is a valid password ($(...), ../ and spaces too): only what cannot be one
    ("ntrip", "password"): ("credentials.ntrip.password", "ntrip", _strings({"long": "p" * 257}, inject=False)),
    ("dynamickeys", "current", "start"): (
        "credentials.dynamickeys.current.start",
        "mqtt",
        {
            "one": 1,
            "1999": 915148800000,
            "2101": 4133980800000,
            "str": str(START),
            "float": float(START),
            **TYPES,
            **NUMBERS,
        },
    ),
    ("dynamickeys", "next", "duration"): (
        "credentials.dynamickeys.next.duration",
        "mqtt",
        {"zero": 0, "1s": 1000, "401d": 401 * 86400 * 1000, "str": "1", **TYPES, **NUMBERS},
    ),
    ("dynamickeys", "current", "value"): (
        "credentials.dynamickeys.current.value",
        "mqtt",
        _strings({"short": "00" * 15, "fullwidth": "\uff10" * 32, "zz": "zz" * 16}),
    ),
}
# whole sections of the wrong type
SECTIONS = {
    ("mqtt",): ("credentials.mqtt", "mqtt", {"str": "junk", "list": [], "int": 5, "nested": NESTED}),
    ("ntrip",): ("credentials.ntrip", "ntrip", {"str": "junk", "list": [], "int": 5, "nested": NESTED}),
    ("topics",): ("credentials.topics", "mqtt", {"str": "junk", "list": ["/pp/ip/eu"], "int": 5}),
    ("topics", "corrections"): ("credentials.topics.corrections", "mqtt", {"str": "/pp/ip/eu", "int": 5}),
    ("regions",): ("credentials.regions", "mqtt", {"str": "eu", "obj": {"eu": 1}, "many": ["eu"] * 100}),
    ("dynamickeys",): ("credentials.dynamickeys", "mqtt", {"str": "junk", "list": [], "int": 5}),
    ("dynamickeys", "current"): ("credentials.dynamickeys.current", "mqtt", {"str": "junk", "list": [], "int": 5}),
}
# whole files: the error names the credentials file
FILES = {
    "deep": "[" * 100_000 + "]" * 100_000,
    "deep_object": '{"mqtt": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001,
    "bigint": '{"format": ' + "9" * 5000 + "}",
    "list": "[]",
    "string": '"junk"',
    "nan": '{"format": NaN}',
    "not_json": "{not json",
    "binary": "\udcff\x00",
}


def _base(tmp_path: Path) -> dict:
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_text("cert")
    key.write_text("key")
    return {
        "format": 1,
        "plan": "ip",
        "client_id": "cid-1",
        "certificate_not_after": "2027-11-25T21:00:00Z",
        "mqtt": {
            "host": "pp.example",
            "port": 8883,
            "client_id": "cid-1",
            "certificate": str(cert),
            "private_key": str(key),
        },
        "regions": ["eu", "us"],
        "topics": {
            "keys": "/pp/ubx/0236/ip",
            "corrections": {"eu": "/pp/ip/eu", "us": "/pp/ip/us"},
            "assistnow": "/pp/ubx/mga",
            "frequencies": "/pp/frequencies/Lb",
        },
        "ntrip": {
            "host": "nt.example",
            "port": 2101,
            "tls_port": 2102,
            "mountpoint": "NEAR-SPARTN",
            "username": "user",
            "password": "pass",
        },
        "dynamickeys": {
            "current": {"start": START, "duration": DURATION, "value": "00" * 16},
            "next": {"start": START + DURATION + 1, "duration": DURATION, "value": "11" * 16},
        },
    }


def _corpus() -> list[tuple[str, tuple, object, str, str]]:
    """(id, path in credentials.json, hostile value, input, field the error names)."""
    out = []
    for table in (FIELDS, SECTIONS):
        for path, (where, inp, variants) in table.items():
            for name, value in variants.items():
                out.append((f"{'.'.join(map(str, path))}-{name}", path, value, inp, where))
    return out


CORPUS = _corpus()


def _set(doc: dict, path: tuple, value: object) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _write(tmp_path: Path, inp: str, creds: object | str) -> str:
    (tmp_path / "credentials.json").write_text(
        creds if isinstance(creds, str) else json.dumps(creds), encoding="utf-8", errors="surrogateescape"
    )
    cfg = {"credentials_file": str(tmp_path / "credentials.json"), "input": inp, "health": {"metrics_port": None}}
    path = tmp_path / "forwarder.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def _check(capsys, path: str) -> str:
    assert cli.main(["-c", path, "--check-config"]) == cli.EXIT_CONFIG
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("config error: ")
    assert "Traceback" not in err and len(err) <= config.MESSAGE_MAX + 1
    assert all(ch == "\n" or (ch.isprintable() and ch not in "\x1b\r\x00") for ch in err), repr(err)
    return err


def test_corpus_size():
    assert len(CORPUS) + len(FILES) >= 300


def test_valid_base_passes(tmp_path, capsys):
    for inp in ("mqtt", "ntrip"):
        assert cli.main(["-c", _write(tmp_path, inp, _base(tmp_path)), "--check-config"]) == 0
    assert capsys.readouterr().out.startswith("config ok: ")


@pytest.mark.parametrize("case", [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_hostile_credentials_field_exits_2_naming_it(tmp_path, capsys, case):
    path, value, inp, where = case
    creds = _base(tmp_path)
    _set(creds, path, copy.deepcopy(value))
    err = _check(capsys, _write(tmp_path, inp, creds))
    assert err.startswith(f"config error: {where}"), err


@pytest.mark.parametrize("name", sorted(FILES))
def test_broken_credentials_file_exits_2_naming_the_file(tmp_path, capsys, name):
    err = _check(capsys, _write(tmp_path, "mqtt", FILES[name]))
    assert err.startswith(("config error: credentials_file: ", "config error: credentials.")), err


SAMPLE = [
    "ntrip.mountpoint-crlf",
    "ntrip.username-ansi",
    "dynamickeys.current.start-huge",
    "mqtt.host-huge",
    "topics.keys-nul",
]


@pytest.mark.parametrize("name", SAMPLE)
def test_hostile_credentials_through_a_real_process(tmp_path, name):
    _id, path, value, inp, where = next(c for c in CORPUS if c[0] == name)
    creds = _base(tmp_path)
    _set(creds, path, value)
    cfg = _write(tmp_path, inp, creds)
    proc = subprocess.run(
        [sys.executable, "-m", "pointperfect_forwarder", "-c", cfg, "--check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"config error: {where}") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_ntrip_request_never_carries_a_credentials_crlf(tmp_path):
    creds = _base(tmp_path)
    creds["ntrip"]["mountpoint"] = "NEAR-SPARTN HTTP/1.1\r\nX-Injected: 1\r\n\r\nGET /other"
    with pytest.raises(config.ConfigError, match=r"^config error: credentials\.ntrip\.mountpoint: "):
        config.load(_write(tmp_path, "ntrip", creds))


def test_digit_string_ports_still_accepted(tmp_path):
    creds = _base(tmp_path)
    creds["ntrip"]["tls_port"] = "2102"
    creds["mqtt"]["port"] = "8883"
    assert config.load(_write(tmp_path, "ntrip", creds)).ntrip.port == 2102
    assert config.load(_write(tmp_path, "mqtt", creds)).mqtt.port == 8883


# --- forwarder.json: every numeric field has a range, every bad value exits 2 naming the field ----------------------

CONFIG_CASES = [
    ({"output": {"baudrate": 10**100}}, "output.baudrate"),
    ({"output": {"baudrate": 49}}, "output.baudrate"),
    ({"output": {"baudrate": 4000001}}, "output.baudrate"),
    ({"lband": {"baudrate": 10**100}}, "lband.baudrate"),
    ({"backoff": {"initial": 0.01}}, "backoff.initial"),
    ({"backoff": {"initial": 3601, "max": 7200}}, "backoff.initial"),
    ({"backoff": {"max": 1e308}}, "backoff.max"),
    ({"backoff": {"max": 86401}}, "backoff.max"),
    ({"backoff": {"reset_after": 86401}}, "backoff.reset_after"),
    ({"backoff": {"reset_after": -1}}, "backoff.reset_after"),
    ({"ntrip": {"gga_interval": 1e-300}}, "ntrip.gga_interval"),
    ({"ntrip": {"gga_interval": 3601}}, "ntrip.gga_interval"),
    ({"ntrip": {"gga_grace": 86401}}, "ntrip.gga_grace"),
    ({"watchdog": {"no_data_timeout": 0.5}}, "watchdog.no_data_timeout"),
    ({"watchdog": {"no_data_timeout": 86401}}, "watchdog.no_data_timeout"),
    ({"health": {"summary_interval": 0.1}}, "health.summary_interval"),
    ({"health": {"summary_interval": 86401}}, "health.summary_interval"),
    ({"output": {"queue_bytes": 256 * 1024 * 1024 + 1}}, "output.queue_bytes"),
    ({"health": {"metrics_port": 0}}, "health.metrics_port"),
    ({"health": {"metrics_port": "9661"}}, "health.metrics_port"),
    ({"mqtt": {"keepalive": 4}}, "mqtt.keepalive"),
    ({"input": "ntrip", "ntrip": {"port": "abc", "tls": True}}, "ntrip.port"),
    ({"input": "ntrip", "ntrip": {"version": True}}, "ntrip.version"),
    ({"input": "ntrip", "ntrip": {"version": 2.0}}, "ntrip.version"),
    ({"input": "ntrip", "ntrip": {"mountpoint": "NEAR\r\nX: 1"}}, "ntrip.mountpoint"),
    ({"input": "ntrip", "ntrip": {"host": "nt.example\r\nX: 1"}}, "ntrip.host"),
    ({"mqtt": {"host": "\x1b[31mpp"}}, "mqtt.host"),
    ({"health": {"metrics_address": "127.0.0.1\n"}}, "health.metrics_address"),
    ({"output": {"type": "tcp", "host": "a b", "port": 1}}, "output.host"),
    ({"output": {"device": "/dev/ttyACM0\x00"}}, "output.device"),
    ({"fixed_position": {"lat": 0, "lon": 0, "alt": 1e300}}, "fixed_position.alt"),
    ({"mqtt": {"region": "e" * 17}}, "mqtt.region"),
    ({"mqtt": {"region": ["eu"]}}, "mqtt.region"),
]


@pytest.mark.parametrize(("cfg", "where"), CONFIG_CASES, ids=[c[1] + f"-{i}" for i, c in enumerate(CONFIG_CASES)])
def test_config_bounds_exit_2_naming_the_field(tmp_path, capsys, cfg, where):
    path = Path(_write(tmp_path, "mqtt", _base(tmp_path)))
    doc = json.loads(path.read_text())
    for section, value in cfg.items():
        doc[section] = {**doc.get(section, {}), **value} if isinstance(value, dict) else value
    path.write_text(json.dumps(doc))
    err = _check(capsys, str(path))
    assert err.startswith(f"config error: {where}: "), err


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"backoff": {"max": Infinity}}', "backoff.max"),
        ('{"backoff": {"initial": NaN}}', "backoff.initial"),
        ('{"output": {"baudrate": Infinity}}', "output.baudrate"),
        ('{"fixed_position": {"lat": NaN, "lon": 0}}', "fixed_position.lat"),
        ('{"log_level": ' + "[" * 100_000 + "]" * 100_000 + "}", "config"),
        ('{"mqtt": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001, "config"),
        ('{"output": {"baudrate": ' + "9" * 5000 + "}}", "config"),
    ],
)
def test_config_non_finite_and_nested_exit_2(tmp_path, capsys, text, where):
    path = Path(_write(tmp_path, "mqtt", _base(tmp_path)))
    creds = json.loads(path.read_text())["credentials_file"]
    path.write_text(text[:1] + f'"credentials_file": {json.dumps(creds)}, ' + text[1:])
    err = _check(capsys, str(path))
    assert err.startswith(f"config error: {where}: "), err


def test_metrics_port_null_disables_the_endpoint(tmp_path):
    s = config.load(_write(tmp_path, "mqtt", _base(tmp_path)))
    assert s.health["metrics_port"] is None


def test_key_message_from_the_broker_with_a_huge_start_is_refused_not_a_struct_error():
    from pointperfect_forwarder.keys import parse_json_keys  # noqa: PLC0415 - only this test

    payload = json.dumps({"current": {"start": 10**30, "duration": DURATION, "value": "00" * 16}}).encode()
    with pytest.raises(ValueError, match=r"dynamickeys\.current\.start: out of range"):
        parse_json_keys(payload)
