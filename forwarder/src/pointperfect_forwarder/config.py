"""Loads and validates forwarder.json (Contract 2) and credentials.json (Contract 1) into one resolved Settings."""

from __future__ import annotations

import base64
import copy
import json
import math
import os
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from . import _credentials as contract
from .keys import DynamicKey, parse_dynamickeys

DEFAULT_CONFIG_PATH = "/etc/pointperfect/forwarder.json"
MQTT_DEFAULT_PORT = contract.MQTT_PORT

DEFAULTS: dict[str, Any] = {
    "credentials_file": "/etc/pointperfect/credentials.json",
    "input": "mqtt",
    "ca_file": None,
    "mqtt": {"host": None, "port": None, "region": "auto", "assistnow": False, "keepalive": 60},
    "ntrip": {
        "host": None,
        "port": None,
        "tls": True,
        "allow_plain_auth": False,
        "mountpoint": None,
        "version": 2,
        "gga_interval": 10,
        "gga_grace": 120,
        "fixed_position": None,
    },
    "output": {
        "type": "serial",
        "device": "/dev/ttyACM0",
        "baudrate": 38400,
        "host": None,
        "port": None,
        "path": None,
        "queue_bytes": 1048576,
    },
    "receiver": {"configure": True, "port": "USB", "source": "ip"},
    "lband": {"device": None, "baudrate": 38400, "port": "USB"},
    "fixed_position": None,
    "backoff": {"initial": 1, "max": 60, "reset_after": 60},
    "watchdog": {"no_data_timeout": 30},
    "health": {
        "status_file": "/run/pointperfect/status.json",
        "metrics_address": "127.0.0.1",
        "metrics_port": 9661,
        "summary_interval": 60,
    },
    "log_level": "info",
}


MESSAGE_MAX = 300  # characters of a config error message: one readable line whatever a hostile value holds


def _clean(text: str, limit: int = MESSAGE_MAX) -> str:
    """One printable line: control and other invisible characters escaped (no CR/LF, NUL or ANSI escapes reach a
    terminal or the journal), cut to `limit` characters."""
    out = "".join(ch if _shown(ch) else ch.encode("unicode_escape").decode("ascii") for ch in text[: limit * 2])
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _shown(ch: str) -> bool:
    """Printed as is in a message: ASCII printable, or a letter, digit, punctuation or symbol."""
    return (ch.isascii() and ch.isprintable()) or unicodedata.category(ch)[0] in "LNPS"


class ConfigError(Exception):
    """Bad configuration: str() is the one-line message naming the field (hostile values escaped and cut)."""

    def __init__(self, where: str, problem: str):
        where = _clean(where, 120)
        super().__init__(_clean(f"config error: {where}: {problem}"))
        self.where = where


@dataclass
class MqttSettings:
    host: str
    port: int
    client_id: str
    certificate: str
    private_key: str
    keepalive: int
    key_topic: str | None
    corrections: dict[str, str]  # region -> its correction topic (one is subscribed, once a region is chosen)
    assistnow_topic: str | None
    frequencies_topic: str | None = None  # L-band mode: the NEO-D9S frequencies


@dataclass
class NtripSettings:
    host: str
    port: int
    tls: bool
    mountpoint: str
    version: int
    username: str
    password: str
    gga_interval: float
    gga_grace: float
    fixed_position: dict[str, float] | None
    allow_plain_auth: bool = False


@dataclass
class Settings:
    path: str
    raw: dict[str, Any]
    credentials_file: str
    input: str
    ca_file: str | None
    mqtt: MqttSettings | None
    ntrip: NtripSettings | None
    output: dict[str, Any]
    receiver: dict[str, Any]
    backoff: dict[str, float]
    watchdog: dict[str, float]
    health: dict[str, Any]
    log_level: str
    plan: str | None = None
    keys: dict[str, DynamicKey] = field(default_factory=dict)
    certificate_not_after: float | None = None
    regions: list[str] = field(default_factory=list)  # the plan's regions (credentials `regions`, else its topics)
    region: str | None = None  # explicit mqtt.region; None = auto
    fixed_position: dict[str, float] | None = None  # fixed_position, else ntrip.fixed_position
    lband: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS["lband"]))

    @property
    def lband_mode(self) -> str:
        """off (receiver.source ip), keys_only (L-band without a NEO-D9S) or d9s."""
        if self.receiver["source"] != "lband":
            return "off"
        return "d9s" if self.lband["device"] else "keys_only"

    def secrets(self) -> list[str]:
        """Strings that must never reach a log line, the status file or STATUS= (short ones too: see redact.py)."""
        out = []
        for key in self.keys.values():
            out += [key.value.hex(), key.value.hex().upper()]
        if self.ntrip:
            n = self.ntrip
            out += [n.password, base64.b64encode(f"{n.username}:{n.password}".encode()).decode()]
        return [s for s in out if s]

    def input_endpoint(self) -> str:
        conn = self.mqtt if self.input == "mqtt" else self.ntrip
        return f"{conn.host}:{conn.port}"

    def output_target(self) -> str:
        out = self.output
        if out["type"] == "serial":
            return out["device"]
        if out["type"] == "tcp":
            return f"{out['host']}:{out['port']}"
        return out["path"]


# --- field checks --------------------------------------------------------------------------------------------------


def _merge(where: str, defaults: dict, given: Any) -> dict:
    if not isinstance(given, dict):
        raise ConfigError(where or "config", "must be an object")
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        name = f"{where}.{key}" if where else key
        if key not in defaults:
            raise ConfigError(name, "unknown field")
        if isinstance(defaults[key], dict):
            out[key] = _merge(name, defaults[key], value)
        else:
            out[key] = value
    return out


def _int(where: str, value: Any, lo: int | None = None, hi: int | None = None, null: bool = False) -> int | None:
    if value is None and null:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(where, "must be an integer" + (" or null" if null else ""))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(where, f"must be between {lo} and {hi}" if hi is not None else f"must be >= {lo}")
    return value


def _num(where: str, value: Any, lo: float = 0.0, hi: float | None = None, positive: bool = False) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(where, "must be a number")
    if hi is not None and not lo <= value <= hi:
        raise ConfigError(where, f"must be between {lo:g} and {hi:g}")
    if value < lo or (positive and value <= 0):
        raise ConfigError(where, "must be > 0" if positive else f"must be >= {lo:g}")
    return float(value)


def _str(where: str, value: Any, null: bool = False) -> str | None:
    if value is None and null:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(where, "must be a non-empty string" + (" or null" if null else ""))
    if len(value) > 4096 or any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ConfigError(where, "must be at most 4096 characters without control characters")
    return value


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(where, "must be true or false")
    return value


def _choice(where: str, value: Any, choices: tuple) -> Any:
    if not any(type(value) is type(c) and value == c for c in choices):
        raise ConfigError(where, "must be one of " + ", ".join(str(c) for c in choices))
    return value


def _position(where: str, fp: Any) -> None:
    if fp is None:
        return
    if not isinstance(fp, dict):
        raise ConfigError(where, "must be an object {lat, lon, alt} or null")
    for key in fp:
        if key not in ("lat", "lon", "alt"):
            raise ConfigError(f"{where}.{key}", "unknown field")
    for key, lim in (("lat", 90), ("lon", 180)):
        value = _num(f"{where}.{key}", fp.get(key), lo=-lim)
        if value > lim:
            raise ConfigError(f"{where}.{key}", f"must be between -{lim} and {lim}")
    _num(f"{where}.alt", fp.get("alt", 0.0), lo=-1000, hi=100000)


def _validate(cfg: dict) -> None:
    """Every forwarder.json field, section by section; the first bad one raises its ConfigError."""
    _str("credentials_file", cfg["credentials_file"])
    _choice("input", cfg["input"], ("mqtt", "ntrip"))
    _str("ca_file", cfg["ca_file"], null=True)
    _validate_mqtt(cfg["mqtt"])
    _validate_ntrip(cfg["ntrip"], cfg["input"])
    _validate_output(cfg["output"])
    r = cfg["receiver"]
    _bool("receiver.configure", r["configure"])
    _choice("receiver.port", r["port"], ("USB", "UART1", "UART2"))
    _choice("receiver.source", r["source"], ("ip", "lband"))
    _position("fixed_position", cfg["fixed_position"])
    _validate_lband(cfg)
    b = cfg["backoff"]
    _num("backoff.initial", b["initial"], 0.1, 3600)
    _num("backoff.max", b["max"], 0.1, 86400)
    if b["max"] < b["initial"]:
        raise ConfigError("backoff.max", "must be >= backoff.initial")
    _num("backoff.reset_after", b["reset_after"], 0, 86400)
    _num("watchdog.no_data_timeout", cfg["watchdog"]["no_data_timeout"], 1, 86400)
    h = cfg["health"]
    _str("health.status_file", h["status_file"], null=True)
    _host("health.metrics_address", h["metrics_address"])
    # null disables the endpoint; 0 (any free port) is refused: Prometheus could never find it
    _int("health.metrics_port", h["metrics_port"], 1, 65535, null=True)
    _num("health.summary_interval", h["summary_interval"], 1, 86400)
    _choice("log_level", cfg["log_level"], ("debug", "info", "warning", "error"))


def _validate_mqtt(m: dict) -> None:
    if m["host"] is not None:
        _host("mqtt.host", m["host"])
    _int("mqtt.port", m["port"], 1, 65535, null=True)
    if m["region"] is not None and not (isinstance(m["region"], str) and REGION_RE.fullmatch(m["region"])):
        raise ConfigError("mqtt.region", "must be auto or a region name like eu, us, au, kr, jp")
    _bool("mqtt.assistnow", m["assistnow"])
    _int("mqtt.keepalive", m["keepalive"], 5, 65535)


def _validate_ntrip(n: dict, input_type: str) -> None:
    if n["host"] is not None:
        _host("ntrip.host", n["host"])
    _int("ntrip.port", n["port"], 1, 65535, null=True)
    _bool("ntrip.tls", n["tls"])
    _bool("ntrip.allow_plain_auth", n["allow_plain_auth"])
    if input_type == "ntrip" and not n["tls"] and not n["allow_plain_auth"]:
        problem = "false sends the NTRIP password in clear text (Basic auth): set ntrip.allow_plain_auth to accept that"
        raise ConfigError("ntrip.tls", problem)
    if n["mountpoint"] is not None:
        _mountpoint("ntrip.mountpoint", n["mountpoint"])
    _choice("ntrip.version", n["version"], (1, 2))
    _num("ntrip.gga_interval", n["gga_interval"], 1, 3600)
    _num("ntrip.gga_grace", n["gga_grace"], 0, 86400)
    _position("ntrip.fixed_position", n["fixed_position"])


def _validate_output(o: dict) -> None:
    _choice("output.type", o["type"], ("serial", "tcp", "file"))
    if o["type"] == "serial":
        _str("output.device", o["device"])
        _int("output.baudrate", o["baudrate"], 50, 4000000)
    elif o["type"] == "tcp":
        _host("output.host", o["host"])
        _int("output.port", o["port"], 1, 65535)
    else:
        _str("output.path", o["path"])
    _int("output.queue_bytes", o["queue_bytes"], 4096, 256 * 1024 * 1024)


def _validate_lband(cfg: dict) -> None:
    """The NEO-D9S fields, and how a D9S fits the receiver, the input and the output."""
    lb = cfg["lband"]
    _str("lband.device", lb["device"], null=True)
    _int("lband.baudrate", lb["baudrate"], 50, 4000000)
    _choice("lband.port", lb["port"], ("USB", "UART1", "UART2"))
    if lb["device"] is None:
        return
    if cfg["receiver"]["source"] != "lband":
        raise ConfigError("lband.device", "a NEO-D9S needs receiver.source lband")
    if cfg["input"] != "mqtt":
        raise ConfigError("lband.device", "a NEO-D9S needs input mqtt (its frequency comes from MQTT)")
    o = cfg["output"]
    if o["type"] == "serial" and lb["device"] == o["device"]:
        raise ConfigError("lband.device", "must not be output.device (the NEO-D9S has its own port)")


# --- credentials -----------------------------------------------------------------------------------------------------


# The value rules of Contract 1 live in _credentials.py (the ztp module's own file, shared through a symlink);
# these functions give their one-line messages.
REGION_RE = re.compile(r"[A-Za-z0-9_-]{1,16}")  # forwarder.json mqtt.region


def _host(where: str, value: Any) -> str:
    """A DNS name ([A-Za-z0-9.-], labels <= 63, <= 253) or an IP literal."""
    if not isinstance(value, str) or not value:
        raise ConfigError(where, "must be a host name or IP address")
    if not contract.valid_host(value):
        problem = f"must be a host name (letters, digits, . -; at most {contract.HOST_MAX}) or an IP address"
        raise ConfigError(where, problem)
    return value


def _port(where: str, value: Any) -> int:
    """A port 1..65535: an integer or a string of digits (ZTP's httpPort is a string)."""
    port = contract.port_number(value)
    if port is not None:
        return port
    digits = isinstance(value, str) and value.isascii() and value.isdigit()
    if digits or (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(where, "must be between 1 and 65535")
    raise ConfigError(where, "must be an integer")


def _name(where: str, value: Any, valid, limit: int, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(where, f"must be a non-empty string ({what})")
    if not valid(value):
        raise ConfigError(where, f"must be {what}, at most {limit} characters")
    return value


def _mountpoint(where: str, value: Any) -> str:
    what = "a mountpoint name (letters, digits, . _ -)"
    return _name(where, value, contract.valid_mountpoint, contract.MOUNTPOINT_MAX, what)


def _client_id(where: str, value: Any) -> str:
    return _name(
        where, value, contract.valid_client_id, contract.CLIENT_ID_MAX, "a client id (letters, digits, . _ : -)"
    )


def _username(where: str, value: Any) -> str:
    """Printable ASCII without whitespace or ':' (it is the user part of HTTP Basic auth)."""
    if not isinstance(value, str) or not value:
        raise ConfigError(where, "must be a non-empty string")
    if not contract.valid_username(value):
        raise ConfigError(where, "must be printable ASCII without spaces or ':', at most 256 characters")
    return value


def _password(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(where, "must be a string")
    if not contract.valid_password(value):
        raise ConfigError(where, f"must be at most {contract.PASSWORD_MAX} characters without control characters")
    return value


def _path(where: str, value: Any) -> str:
    """A file path written by the ztp module: absolute, no '..', no control characters."""
    if not isinstance(value, str) or not value:
        raise ConfigError(where, "must be a non-empty string (a file path)")
    bad = any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)
    if bad or len(value) > 4096 or not value.startswith("/") or ".." in value.split("/"):
        raise ConfigError(where, "must be an absolute file path without '..' or control characters")
    return value


def _topic(where: str, value: Any) -> str:
    return _name(
        where,
        value,
        contract.valid_topic,
        contract.TOPIC_MAX,
        "an MQTT topic (letters, digits, / _ . -; no '..' level)",
    )


def _region(where: str, value: Any) -> str:
    if not contract.valid_region(value):
        raise ConfigError(where, "must be a region code like eu, us, au, kr, jp")
    return value.lower()


def _object(where: str, value: Any, null: bool = True) -> dict | None:
    if value is None and null:
        return None
    if not isinstance(value, dict):
        raise ConfigError(where, "must be an object" + (" or null" if null else ""))
    return value


def _check_credentials(creds: dict) -> None:
    """Every credentials.json field the forwarder uses, whoever wrote the file: type, charset, length, range."""
    if not contract.valid_format(creds.get("format", contract.FORMAT)):
        raise ConfigError("credentials.format", f"unsupported format (expected {contract.FORMAT})")
    plan = creds.get("plan")
    if plan is not None and not contract.valid_plan(plan):
        raise ConfigError("credentials.plan", "must be a plan name like ip, lband, ip+lband, ntrip, or null")
    if creds.get("client_id") is not None:
        _client_id("credentials.client_id", creds["client_id"])
    cert_na = creds.get("certificate_not_after")
    if cert_na is not None and not isinstance(cert_na, str):
        raise ConfigError("credentials.certificate_not_after", "must be an ISO 8601 UTC time or null")
    _check_credentials_mqtt(_object("credentials.mqtt", creds.get("mqtt")))
    listed = creds.get("regions")
    if listed is not None:
        if not isinstance(listed, list) or len(listed) > contract.REGIONS_MAX:
            raise ConfigError("credentials.regions", "must be a list of region codes")
        for i, r in enumerate(listed):
            _region(f"credentials.regions[{i}]", r)
    _check_credentials_topics(_object("credentials.topics", creds.get("topics")))
    _check_credentials_ntrip(_object("credentials.ntrip", creds.get("ntrip")))


def _check_credentials_mqtt(cm: dict | None) -> None:
    if cm is None:
        return
    checks = {"host": _host, "client_id": _client_id, "certificate": _path, "private_key": _path}
    for key, check in checks.items():
        if cm.get(key) is not None:
            check(f"credentials.mqtt.{key}", cm[key])
    if cm.get("port") is not None:
        _port("credentials.mqtt.port", cm["port"])


def _check_credentials_topics(topics: dict | None) -> None:
    if topics is None:
        return
    for key in ("keys", "assistnow", "frequencies"):
        if topics.get(key) is not None:
            _topic(f"credentials.topics.{key}", topics[key])
    corr = topics.get("corrections")
    if isinstance(corr, list) and len(corr) <= contract.REGIONS_MAX:
        for i, t in enumerate(corr):
            _topic(f"credentials.topics.corrections[{i}]", t)
            _region(f"credentials.topics.corrections[{i}]", t.rstrip("/").rsplit("/", 1)[-1])
    elif isinstance(corr, dict) and len(corr) <= contract.REGIONS_MAX:
        for r, t in corr.items():
            _region("credentials.topics.corrections", r)
            _topic(f"credentials.topics.corrections.{r}", t)
    elif corr is not None:
        raise ConfigError("credentials.topics.corrections", "must map region -> topic (or be a list of topics)")


def _check_credentials_ntrip(cn: dict | None) -> None:
    if cn is None:
        return
    for key in ("host", "mountpoint", "username", "password"):
        where = f"credentials.ntrip.{key}"
        if key == "password":
            _password(where, cn.get(key))
        elif cn.get(key) is not None:
            {"host": _host, "mountpoint": _mountpoint, "username": _username}[key](where, cn[key])
    for key in ("port", "tls_port"):
        if cn.get(key) is not None:
            _port(f"credentials.ntrip.{key}", cn[key])


def _read_json(where: str, path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise ConfigError(where, f"{path}: no such file") from None
    except PermissionError:
        raise ConfigError(where, f"{path}: permission denied") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(where, f"{path}: cannot read ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(where, f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ConfigError(where, f"{path}: JSON nested too deeply") from None
    except ValueError:  # e.g. an integer of more than 4300 digits
        raise ConfigError(where, f"{path}: invalid JSON (a value out of range)") from None


def _timestamp(where: str, value: Any) -> float | None:
    if value is None:
        return None
    ts = contract.parse_iso(value, strict=True)
    if ts is None:
        raise ConfigError(where, "must be an ISO 8601 UTC time like 2027-11-25T21:00:00Z")
    return ts


def _topics(creds: dict) -> dict:
    topics = creds.get("topics") or {}
    if not isinstance(topics, dict):
        raise ConfigError("credentials.topics", "must be an object")
    return topics


def _corrections(topics: dict) -> dict[str, str]:
    """`topics.corrections`: region -> topic, or the old form, a list of topics (region = last path element)."""
    corr = topics.get("corrections") or {}
    listed = isinstance(corr, list) and all(isinstance(t, str) and t.strip("/") for t in corr)
    if listed or (
        isinstance(corr, dict) and all(isinstance(r, str) and r and isinstance(t, str) and t for r, t in corr.items())
    ):
        return {r.lower(): t for r, t in contract.corrections_map(corr).items()}
    raise ConfigError("credentials.topics.corrections", "must map region -> topic (or be a list of topics)")


def _regions(cfg: dict, creds: dict) -> tuple[list[str], str | None]:
    """The plan's regions (credentials `regions`, else the correction topics' regions) and the explicit region."""
    listed = creds.get("regions")
    if listed is not None and (not isinstance(listed, list) or not all(isinstance(r, str) and r for r in listed)):
        raise ConfigError("credentials.regions", "must be a list of region codes")
    corr = _corrections(_topics(creds))
    regions = sorted({r.lower() for r in listed} if listed is not None else set(corr))
    wanted = cfg["mqtt"]["region"]
    explicit = None if wanted in (None, "auto") else str(wanted).lower()
    if explicit and cfg["input"] == "mqtt":
        plan = regions or (sorted(corr) if cfg["receiver"]["source"] == "ip" else [])
        if plan and explicit not in plan:
            problem = f"'{explicit}' is not in this plan ({', '.join(plan)}): set it to one of them or auto"
            raise ConfigError("mqtt.region", problem)
        if cfg["receiver"]["source"] == "ip" and explicit not in corr:
            raise ConfigError("mqtt.region", f"'{explicit}' has no correction topic in credentials topics.corrections")
    return regions, explicit


def _service(cfg: dict, creds: dict, name: str, other: str) -> tuple[dict, dict, str]:
    """Input `name`'s forwarder.json section, its credentials section and its host (forwarder.json's first)."""
    given = creds.get(name)
    if given is None:
        raise ConfigError(f"credentials.{name}", f"null: this plan has no {name.upper()} service (use input {other})")
    return cfg[name], given, cfg[name]["host"] or _host(f"credentials.{name}.host", given.get("host"))


def _resolve_mqtt(cfg: dict, creds: dict) -> MqttSettings:
    m, cm, host = _service(cfg, creds, "mqtt", "ntrip")
    port = m["port"] or (MQTT_DEFAULT_PORT if cm.get("port") is None else _port("credentials.mqtt.port", cm["port"]))
    if cm.get("client_id") is not None:
        client_id = cm["client_id"]
    else:
        client_id = _client_id("credentials.client_id", creds.get("client_id"))
    cert = _path("credentials.mqtt.certificate", cm.get("certificate"))
    key = _path("credentials.mqtt.private_key", cm.get("private_key"))
    for where, path in (("credentials.mqtt.certificate", cert), ("credentials.mqtt.private_key", key)):
        if not os.path.isfile(path):
            raise ConfigError(where, f"{path}: no such file")
        if not os.access(path, os.R_OK):
            raise ConfigError(where, f"{path}: permission denied")
    topics = _topics(creds)
    key_topic = topics.get("keys")
    corr, freq = _corrections(topics), None
    if cfg["receiver"]["source"] == "lband":
        # L-band: corrections come over the satellite (NEO-D9S, tuned from the frequencies topic), keys over MQTT
        corr = {}
        freq = topics.get("frequencies") or "/pp/frequencies/Lb"
    elif not corr:
        hint = " (an L-band plan: set receiver.source lband)" if creds.get("plan") == "lband" else ""
        raise ConfigError("credentials.topics.corrections", "no correction topic" + hint)
    assist = None
    if m["assistnow"]:
        assist = topics.get("assistnow") or "/pp/ubx/mga"
    return MqttSettings(host, port, client_id, cert, key, m["keepalive"], key_topic, corr, assist, freq)


def _resolve_ntrip(cfg: dict, creds: dict) -> NtripSettings:
    n, cn, host = _service(cfg, creds, "ntrip", "mqtt")
    # ntrip.port is the port to connect to; null = the credentials' TLS port (with tls) or plain port (never derived)
    if n["port"]:
        port = n["port"]
    elif n["tls"]:
        if cn.get("tls_port") is None:
            raise ConfigError("ntrip.port", "set the caster's TLS port (u-blox: 2102)")
        port = _port("credentials.ntrip.tls_port", cn["tls_port"])
    else:
        port = _port("credentials.ntrip.port", cn.get("port"))
    mount = n["mountpoint"] or _mountpoint("credentials.ntrip.mountpoint", cn.get("mountpoint"))
    user = _username("credentials.ntrip.username", cn.get("username"))
    password = _password("credentials.ntrip.password", cn.get("password"))
    return NtripSettings(
        host,
        port,
        n["tls"],
        mount,
        n["version"],
        user,
        password,
        float(n["gga_interval"]),
        float(n["gga_grace"]),
        n["fixed_position"],
        n["allow_plain_auth"],
    )


def load(path: str) -> Settings:
    """Read, validate and resolve the config at `path` and the credentials it names. Raises ConfigError only:
    anything else a hostile or broken file could raise becomes a config error naming the file (exit 2, never a
    traceback and a restart loop)."""
    stage = ["config", path]  # the file being validated, for the guard's message
    try:
        return _load(path, stage)
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError(stage[0], f"{stage[1]}: nested too deeply") from None
    except Exception as exc:  # last-resort guard, see the docstring
        raise ConfigError(stage[0], f"{stage[1]}: unusable value ({exc.__class__.__name__})") from None


def _load(path: str, stage: list[str]) -> Settings:
    raw = _read_json("config", path)
    cfg = _merge("", DEFAULTS, raw)
    _validate(cfg)
    stage[:] = ["credentials_file", cfg["credentials_file"]]
    creds = _read_json("credentials_file", cfg["credentials_file"])
    if not isinstance(creds, dict):
        raise ConfigError("credentials_file", f"{cfg['credentials_file']}: must hold a JSON object")
    _check_credentials(creds)
    try:
        keys = parse_dynamickeys(creds.get("dynamickeys"), "credentials.dynamickeys")
    except ValueError as exc:
        where, _sep, problem = str(exc).partition(": ")
        raise ConfigError(where, problem) from None
    regions, explicit = _regions(cfg, creds)
    settings = Settings(
        path=path,
        raw=cfg,
        credentials_file=cfg["credentials_file"],
        input=cfg["input"],
        ca_file=cfg["ca_file"],
        mqtt=_resolve_mqtt(cfg, creds) if cfg["input"] == "mqtt" else None,
        ntrip=_resolve_ntrip(cfg, creds) if cfg["input"] == "ntrip" else None,
        output=cfg["output"],
        receiver=cfg["receiver"],
        backoff={k: float(v) for k, v in cfg["backoff"].items()},
        watchdog={k: float(v) for k, v in cfg["watchdog"].items()},
        health=cfg["health"],
        log_level=cfg["log_level"],
        plan=creds.get("plan"),
        keys=keys,
        certificate_not_after=_timestamp("credentials.certificate_not_after", creds.get("certificate_not_after")),
        regions=regions,
        region=explicit,
        fixed_position=cfg["fixed_position"] or cfg["ntrip"]["fixed_position"],
        lband=cfg["lband"],
    )
    if settings.ca_file is not None and not os.path.isfile(settings.ca_file):
        raise ConfigError("ca_file", f"{settings.ca_file}: no such file")
    return settings
