"""R2 extended (issue 13): a generated corpus of hostile ZTP 200 responses. Every response field gets every class of
bad value (control characters, CR/LF, NUL, ANSI escapes, $(..), ../, 100 kB strings, wrong types, nested junk), plus
certificate defects, port bounds and dynamic-key bounds. Each body runs in-process through the code path of the
action plugin (ZtpClient.request with its size cap, parse_body, credentials_document): the outcome is a one-line
ZtpError without a traceback or anything secret, or (for values that are only parsed, or allowed in a password) a
credentials document without control characters or injections. A sample goes through the action plugin and the
real module part writing into a temp dest, which stays byte-identical.

Reproduce: .venv/bin/python -m pytest -q -p no:cacheprovider tests/reliability/test_hostile_responses.py
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import re
import time
import types

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# isort: split
from ansible_collections.gnss.pointperfect.plugins.action import ztp as action
from ansible_collections.gnss.pointperfect.plugins.module_utils import _atomic
from ansible_collections.gnss.pointperfect.plugins.modules import ztp as module
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _ztp_client as client_mod
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _ztp_response as resp

from tests.reliability import suite as L
from tests.unit.ztp_samples import KEY_A, KEY_B, mqtt_body, ntrip_body

TOKEN = "6d1e0b7a-3c2f-4e5d-9a8b-7c6d5e4f3a2b"
PASSWORD = "s3cret-pass"
CLIENT_ID = "9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# ---------------------------------------------------------------- keys and certificates, made once per session

_KEYS: dict = {}


def _key(name):
    if name not in _KEYS:
        _KEYS[name] = {
            "a": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "b": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "rsa1024": lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
            "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
            "p224": lambda: ec.generate_private_key(ec.SECP224R1()),
        }[name]()
    return _KEYS[name]


def _cert(key, *, days=365, from_days=-1.0):
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CLIENT_ID)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=from_days))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key, fmt=serialization.PrivateFormat.TraditionalOpenSSL):
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def pair():
    return {"cert": _cert(_key("a")), "key": _key_pem(_key("a")), "other_key": _key_pem(_key("b"))}


def _valid(pair) -> dict:
    """An MQTT answer that also carries NTRIP credentials: every field of both shapes in one body."""
    body = mqtt_body({"cert": pair["cert"], "key": pair["key"]}, clientId=CLIENT_ID)
    body["rtcmCredentials"] = ntrip_body()["rtcmCredentials"]
    return body


# ---------------------------------------------------------------- the corpus

TEXT_CLASSES = {
    "crlf": "\r\n",
    "lf": "\n",
    "nul": "\x00",
    "ansi": "\x1b[31m\x1b[2J",
    "subst": "$(reboot)",
    "backtick": "`id`",
    "dotdot": "../../etc/passwd",
    "space": " x",
    "c1": "\x9b",
    "del": "\x7f",
}
TYPE_CLASSES = {
    "int": 42,
    "bigint": 10**30,
    "neg": -1,
    "float": 1.5,
    "true": True,
    "list": ["a"],
    "dict": {"a": 1},
    "nested": {"a": [{"b": [1, {"c": None, "d": ["\x1b"] * 3}]}]},
    "empty": "",
}
# every field path of a response; the last element is the key, the rest lead to its container
FIELDS = [
    ("clientId",),
    ("brokerHost",),
    ("certificate",),
    ("privateKey",),
    ("supportsMqtt",),
    ("supportsLband",),
    ("subscriptions",),
    ("subscriptions", 0),
    ("subscriptions", 0, "path"),
    ("subscriptions", 1, "path"),
    ("subscriptions", 0, "description"),
    ("dynamickeys",),
    ("dynamickeys", "current"),
    ("dynamickeys", "current", "start"),
    ("dynamickeys", "current", "duration"),
    ("dynamickeys", "current", "value"),
    ("dynamickeys", "next", "start"),
    ("dynamickeys", "next", "duration"),
    ("dynamickeys", "next", "value"),
    ("rtcmCredentials",),
    ("rtcmCredentials", "endpoint"),
    ("rtcmCredentials", "httpPort"),
    ("rtcmCredentials", "userName"),
    ("rtcmCredentials", "password"),
    ("rtcmCredentials", "mountPoint"),
]
# fields whose hostile text may be accepted: a description is only parsed (never stored), a password may hold any
# printable character (never a control character)
PARSED_ONLY = {("subscriptions", 0, "description")}
PASSWORD_FIELD = ("rtcmCredentials", "password")


def _set(body, path, value):
    node = body
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def _get(body, path):
    node = body
    for step in path:
        node = node[step]
    return node


def corpus(pair):
    """(name, field path or None, hostile value or None, body bytes) for every case."""
    base = _valid(pair)
    cases = []

    def add(name, path, value, body):
        cases.append((name, path, value, json.dumps(body).encode() if isinstance(body, dict) else body))

    for path in FIELDS:
        current = _get(base, path)
        text = current if isinstance(current, str) else str(current)
        for cname, bad in TEXT_CLASSES.items():
            for pos, value in (
                ("whole", bad),
                ("suffix", text + bad),
                ("prefix", bad + text),
                ("infix", "a" + bad + "b"),
            ):
                body = copy.deepcopy(base)
                _set(body, path, value)
                add(f"{'.'.join(map(str, path))}:{cname}:{pos}", path, value, body)
        for cname, value in TYPE_CLASSES.items():
            body = copy.deepcopy(base)
            _set(body, path, copy.deepcopy(value))
            add(f"{'.'.join(map(str, path))}:{cname}", path, value, body)
        body = copy.deepcopy(base)
        _set(body, path, "x" * 100_000)
        add(f"{'.'.join(map(str, path))}:100kB", path, "x" * 100_000, body)
        body = copy.deepcopy(base)
        _set(body, path, None)
        add(f"{'.'.join(map(str, path))}:null", path, None, body)
    # ports after every derivation
    for port in (0, -1, 65536, "65536", "0", "99999", 10**30, 2101.5, "2101\n", " 2101x", "0x835", "", True):
        body = copy.deepcopy(base)
        body["rtcmCredentials"]["httpPort"] = port
        add(f"port:{port!r}", ("rtcmCredentials", "httpPort"), port, body)
    # dynamic-key bounds
    for entry in ("current", "next"):
        for start in (-1, 0, 1262304000000 - 1, 4102444800000, 10**30, -(10**30)):
            body = copy.deepcopy(base)
            body["dynamickeys"][entry]["start"] = start
            add(f"keys.{entry}.start:{start}", None, start, body)
        for duration in (-1, 0, 3599999, 400 * 86400000 + 1, 10**30):
            body = copy.deepcopy(base)
            body["dynamickeys"][entry]["duration"] = duration
            add(f"keys.{entry}.duration:{duration}", None, duration, body)
        for value in ("0" * 31, "g" * 32, KEY_A + "\n", KEY_A.upper() + "0"):
            body = copy.deepcopy(base)
            body["dynamickeys"][entry]["value"] = value
            add(f"keys.{entry}.value:{value[:8]}", None, value, body)
    # certificate defects
    key_a, key_b = _key("a"), _key("b")
    defects = {
        "expired": (_cert(key_a, days=-1, from_days=-30), pair["key"]),
        "future": (_cert(key_a, days=365, from_days=1), pair["key"]),
        "mismatch": (pair["cert"], pair["other_key"]),
        "rsa1024": (_cert(_key("rsa1024")), _key_pem(_key("rsa1024"))),
        "p224": (_cert(_key("p224")), _key_pem(_key("p224"))),
        "junk_after": (pair["cert"] + "junk\x1b[31m$(reboot)\n" * 50, pair["key"]),
        "junk_20mb_style": (pair["cert"] + "A" * 2_000_000, pair["key"]),
        "key_in_cert": (pair["cert"] + pair["key"], pair["key"]),
        "second_cert": (pair["cert"] + _cert(key_b), pair["key"]),
        "only_key_in_cert": (pair["key"], pair["key"]),
        "cert_in_key": (pair["cert"], pair["cert"]),
        "two_keys": (pair["cert"], pair["key"] + pair["other_key"]),
        "key_junk": (pair["cert"], pair["key"] + "\r\n\x00"),
        "truncated": (pair["cert"][: len(pair["cert"]) // 2], pair["key"]),
        "key_truncated": (pair["cert"], pair["key"][: len(pair["key"]) // 2]),
        "armour": (pair["cert"].replace("CERTIFICATE", "X509 CRL"), pair["key"]),
        "encrypted_label": (pair["cert"], pair["key"].replace("RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY")),
    }
    for name, (cert, key) in defects.items():
        add(f"cert:{name}", None, None, dict(copy.deepcopy(base), certificate=cert, privateKey=key))
    # raw-body defects
    add("raw:deep_nesting", None, None, b"[" * 100_000 + b"]" * 100_000)
    add("raw:deep_object", None, None, b'{"a":' * 50_000 + b"1" + b"}" * 50_000)
    add("raw:not_utf8", None, None, json.dumps(base).encode().replace(b'"brokerHost": "', b'"brokerHost": "\xff'))
    return cases


# ---------------------------------------------------------------- checks


class _Session:
    """requests stand-in: answers the raw body once with 200."""

    def __init__(self, raw):
        self.raw = raw

    def post(self, url, **kw):
        assert kw.get("allow_redirects") is False and kw.get("stream") is True
        raw = self.raw

        class Response:
            status_code = 200
            headers = {}

            def iter_content(self, size):
                for i in range(0, len(raw), size):
                    yield raw[i : i + size]

            def close(self):
                pass

        return Response()


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _secrets(pair):
    lines = [ln for p in (pair["key"], pair["other_key"]) for ln in p.splitlines() if "-----" not in ln]
    return [*lines, PASSWORD, KEY_A, KEY_B, TOKEN]


def _check_message(msg, value, pair):
    assert msg and "\n" not in msg and "\r" not in msg and len(msg) < 400, msg
    assert not _CONTROL.search(msg), repr(msg)
    assert "Traceback" not in msg
    for secret in _secrets(pair):
        assert secret not in msg, msg
    if isinstance(value, str) and len(value) >= 4 and value.strip():
        assert value not in msg, msg  # values are never echoed


def run_case(raw, path, value, pair):
    """'rejected' or 'accepted'; asserts the outcome is acceptable."""
    cl = client_mod.ZtpClient("https://ztp.test/credentials", session=_Session(raw), retries=0, sleep=lambda s: None)
    try:
        model = resp.parse_body(cl.request(TOKEN, "gw-01"))
        doc = json.loads(resp.credentials_document(model, "gw-01", "gw-01", "/etc/pointperfect"))
    except resp.ZtpError as e:
        _check_message(str(e), value, pair)
        return "rejected"
    # accepted: nothing hostile reaches the document (descriptions are never stored; a password keeps its text)
    for text in _strings(doc):
        assert not _CONTROL.search(text), (path, repr(text)[:80])
        if text != (doc.get("ntrip") or {}).get("password"):
            assert "$(" not in text and "../" not in text and "`" not in text, (path, text[:80])
            assert len(text) <= 300, (path, len(text))
    for pem in (model["certificate_pem"], model["private_key_pem"]):  # re-serialized: exactly one block each
        assert pem.count("-----BEGIN") == 1 and pem.endswith("-----\n")
    return "accepted"


@pytest.fixture(scope="module")
def cases(pair):
    return corpus(pair)


def test_1000_hostile_responses_one_line_errors(pair, cases):
    started = time.monotonic()
    assert len(cases) >= 1000, len(cases)
    outcome = {"rejected": 0, "accepted": 0}
    accepted = []
    for name, path, value, raw in cases:
        result = run_case(raw, path, value, pair)
        outcome[result] += 1
        if result == "accepted":
            accepted.append(name)
    # only harmless values may pass: a description (parsed only), printable password text, plan flags left out,
    # a subscriptions entry or its description left out, a valid equivalent port string
    allowed = (
        "subscriptions.0.description:",  # parsed only, never stored
        "rtcmCredentials.password:",  # printable text is a valid password (control characters are refused)
        "supportsMqtt:null",  # plan flags may be left out
        "supportsLband:null",
        "dynamickeys:null",  # no keys (NTRIP-only answers have none)
        "subscriptions:null",  # no topics
        "rtcmCredentials:null",  # an MQTT answer without NTRIP credentials
        "rtcmCredentials:empty",  # the same ("" is no credentials)
        "supportsMqtt:true",  # valid values of their own
        "supportsLband:true",
        "rtcmCredentials.httpPort:int",  # 42 is a port
        "subscriptions.0.path:space:",  # spaces around a topic are trimmed, as the service's ';' lists need
        "subscriptions.1.path:space:",
    )
    whitespace_ok = ("certificate:crlf:", "certificate:lf:", "privateKey:crlf:", "privateKey:lf:")  # around the PEM
    unexpected = [
        n
        for n in accepted
        if not n.startswith(allowed)
        and not (n.startswith(whitespace_ok) and n.endswith((":suffix", ":prefix", ":whole")))
    ]
    assert not unexpected, "\n".join(unexpected)
    assert outcome["rejected"] >= 900, outcome
    elapsed = time.monotonic() - started
    L.record(
        "ztp_hostile_corpus",
        cases=len(cases),
        rejected=outcome["rejected"],
        accepted=outcome["accepted"],
        seconds=round(elapsed, 1),
    )


# ---------------------------------------------------------------- a sample through the action plugin + module part


class _Action(action.ActionModule):
    """The action plugin with the real module part run in-process on a local dest."""

    def __init__(self):  # no ActionBase plumbing: _provision is driven directly
        self._task = types.SimpleNamespace(check_mode=False, diff=True)

    def _run_part(self, task_vars, args):
        dest, mode = args["dest"], _atomic.parse_mode(args["mode"])
        if args["_state"] == "read":
            return {"state": module.read_state(dest, mode, None, None)}
        if args["_state"] == "attributes":
            return {"changed": module.fix_attributes(dest, mode, None, None)}
        contents = {module.CERT: args.get("_certificate"), module.KEY: args.get("_private_key")}
        contents[module.CREDS] = args["_credentials"]
        contents = {k: None if v is None else v.encode() for k, v in contents.items()}
        changed = module.write_files(dest, contents, mode, None, None, remove=args.get("_remove") or [])
        return {"changed": changed, "files": module.managed_files(dest)}


def _provision(monkeypatch, raw, dest, **options):
    monkeypatch.setattr(
        action,
        "ZtpClient",
        lambda **kw: client_mod.ZtpClient(session=_Session(raw), sleep=lambda s: None, **kw),
    )
    params = dict({"token": TOKEN, "hardware_id": "gw-01", "dest": str(dest), "mode": "0640"}, **options)
    args = ArgumentSpecValidator(action.ARGUMENT_SPEC).validate(params).validated_parameters
    args["region"] = action.region_option(args["region"])
    secrets = {TOKEN}
    result = _Action()._provision(args, {}, secrets)
    if isinstance(result.get("msg"), str):
        result["msg"] = action.redact(result["msg"], secrets, 1000)
    return result


def _tree(dest):
    return {
        p: (hashlib.sha256((dest / p).read_bytes()).hexdigest(), os.lstat(dest / p).st_mode)
        for p in sorted(os.listdir(dest))
    }


SAMPLE = [
    "brokerHost:crlf:suffix",
    "rtcmCredentials.mountPoint:crlf:infix",
    "clientId:ansi:whole",
    "rtcmCredentials.endpoint:subst:whole",
    "subscriptions.0.path:dotdot:whole",
    "rtcmCredentials.userName:100kB",
    "port:'65536'",
    "keys.current.start:1000000000000000000000000000000",
    "cert:expired",
    "cert:key_in_cert",
    "cert:junk_after",
    "cert:rsa1024",
]


def test_sample_through_the_module_part_leaves_dest_byte_identical(pair, cases, tmp_path, monkeypatch):
    cases = {name: raw for name, _path, _value, raw in cases}
    seed = tmp_path / "dest"
    first = _provision(monkeypatch, json.dumps(_valid(pair)).encode(), seed)
    assert first["changed"] is True and not first.get("failed"), first
    assert (seed / "client.crt").read_text() == pair["cert"]
    before = _tree(seed)
    for name in SAMPLE:
        result = _provision(monkeypatch, cases[name], seed, force=True)
        assert result.get("failed") is True, (name, result)
        _check_message(result["msg"], None, pair)
        assert _tree(seed) == before, name
