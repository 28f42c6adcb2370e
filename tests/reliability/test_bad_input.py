"""R2 bad input: generated ZTP responses through the parser and the real action plugin, TLS failures the
integration tests do not cover, corrupt SPARTN/UBX streams into the forwarder, and bad role variables."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import random
import ssl
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pointperfect_sim.replay import MqttReplayer

from tests.reliability import suite as L
from tests.unit.ztp_samples import make_pair, mqtt_body

REPO = L.REPO
ZTP_PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "ztp.yml"  # reused, not duplicated
CAPTURE = Path(os.environ.get("PP_CAPTURES", REPO.parent / "shared" / "captures")) / "spartn_badcrc.log"
TOKEN = "6d1e0b7a-3c2f-4e5d-9a8b-7c6d5e4f3a2b"


def _response_module():
    return importlib.import_module("ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_response")


@pytest.fixture(scope="module")
def pairs():
    cert, key, _ = make_pair()
    other_cert, other_key, _ = make_pair(cn="other")
    return {"cert": cert, "key": key, "other_cert": other_cert, "other_key": other_key}


def _valid(pairs) -> dict:
    return mqtt_body({"cert": pairs["cert"], "key": pairs["key"]}, brokerHost="127.0.0.1")


# ---------------------------------------------------------------- the generator of bad bodies

FIELDS = [
    "clientId",
    "certificate",
    "privateKey",
    "brokerHost",
    "supportsLband",
    "supportsMqtt",
    "dynamickeys",
    "subscriptions",
    "rtcmCredentials",
]
WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def _pem_damage(pem: str, how: int, rnd: random.Random) -> str:
    lines = pem.splitlines()
    if how == 0:  # truncated
        return "\n".join(lines[: max(1, len(lines) // 2)])
    if how == 1 and len(lines) >= 3:  # one body character flipped
        i = rnd.randrange(1, max(2, len(lines) - 1))
        line = lines[i]
        j = rnd.randrange(len(line)) if line else 0
        lines[i] = line[:j] + ("A" if line[j : j + 1] != "A" else "B") + line[j + 1 :]
        return "\n".join(lines)
    if how == 2:  # wrong armour
        return pem.replace("BEGIN", "BEGIN BROKEN").replace("END", "END BROKEN")
    return "not a pem at all"


@st.composite
def bad_bodies(draw, pairs) -> bytes:
    """A ZTP 200 body derived from a valid one by one or more mutations; returned as the raw bytes on the wire."""
    body = _valid(pairs)
    rnd = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["missing", "extra", "wrong_type", "pem", "mismatch", "keys", "subs", "ntrip", "huge"])
        )
        field = draw(st.sampled_from(FIELDS))
        if kind == "missing":
            body.pop(field, None)
        elif kind == "extra":
            body[draw(st.text(min_size=1, max_size=20))] = draw(WRONG)
        elif kind == "wrong_type":
            body[field] = draw(WRONG)
        elif kind == "pem":
            which = draw(st.sampled_from(["certificate", "privateKey"]))
            if isinstance(body.get(which), str):
                body[which] = _pem_damage(body[which], draw(st.integers(0, 3)), rnd)
        elif kind == "mismatch":
            body["privateKey"] = pairs["other_key"]
        elif kind == "keys":
            body["dynamickeys"] = {
                "current": {"start": draw(WRONG), "duration": 1, "value": draw(st.text(max_size=40))}
            }
        elif kind == "subs":
            body["subscriptions"] = draw(st.lists(WRONG, max_size=3))
        elif kind == "ntrip":
            body["rtcmCredentials"] = {
                "endpoint": draw(WRONG),
                "httpPort": draw(WRONG),
                "userName": "u",
                "password": "p",
                "mountPoint": draw(WRONG),
            }
        else:
            body["subscriptions"] = [{"description": "x" * 50, "path": "/pp/ip/eu"}] * draw(st.integers(1000, 20000))
    return _on_the_wire(draw, json.dumps(body).encode())


def _on_the_wire(draw, raw: bytes) -> bytes:
    """The body's bytes as sent: as is, with non-UTF-8 bytes in a string, cut short, or behind a byte-order mark."""
    wire = draw(st.sampled_from(["utf8", "latin1", "cut", "prefix"]))
    if wire == "latin1":  # non-UTF-8 bytes in a string
        raw = raw.replace(b'"brokerHost": "', b'"brokerHost": "\xe9\xff')
    elif wire == "cut":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif wire == "prefix":
        raw = b"\xff\xfe" + raw
    return raw


def _check_outcome(mod, raw: bytes, pairs) -> str | None:
    """Parse one body: a model or a one-line ZtpError without secrets; anything else fails the test."""
    try:
        mod.parse_body(raw)
    except mod.ZtpError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and len(msg) < 400, msg
        for secret in (pairs["key"], pairs["other_key"]):
            body_lines = [ln for ln in secret.splitlines() if "-----" not in ln]
            assert not any(ln in msg for ln in body_lines)
        assert "Traceback" not in msg
        return msg
    return None


COUNTER = {"n": 0, "rejected": 0}


def test_1000_generated_responses_through_the_parser(pairs):
    mod = _response_module()

    @settings(
        max_examples=1100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(bad_bodies(pairs))
    def run(raw):
        COUNTER["n"] += 1
        if _check_outcome(mod, raw, pairs) is not None:
            COUNTER["rejected"] += 1

    run()
    assert COUNTER["n"] >= 1000
    assert COUNTER["rejected"] >= 500, COUNTER  # the generator mostly produces unusable bodies
    L.record("ztp_generated_parser", examples=COUNTER["n"], rejected=COUNTER["rejected"])


# ---------------------------------------------------------------- a tiny HTTPS ZTP server on loopback


class _Server:
    """HTTPS on 127.0.0.1: POST /case/<n> answers bodies[n] with 200; /stall/ sleeps; cert from the lab PKI."""

    def __init__(self, pki, bodies: dict[str, bytes], names=("127.0.0.1", "localhost")):
        bodies_ref = bodies

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                name = self.path.rsplit("/", 1)[-1]
                if self.path.startswith("/stall/"):
                    time.sleep(5)
                body = bodies_ref.get(name, b"{}")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        cert, key = pki.issue_server(names)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.handle_error = lambda *a: None  # failed handshakes are the point of some cases
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}/{path}"


def _tree_hash(dest: Path) -> dict:
    return (
        {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), oct(p.stat().st_mode)) for p in sorted(dest.iterdir())}
        if dest.is_dir()
        else {}
    )


def _playbook(ansible_env, work: Path, cases: list[dict], ca_path: str, api_url: str, *, verbose=True):
    results = work / f"results-{uuid.uuid4().hex[:6]}.json"
    variables = {
        "cases": cases,
        "tokens": {"t": TOKEN},
        "api_url": api_url,
        "ca_path": ca_path,
        "results_file": str(results),
        "ansible_python_interpreter": sys.executable,
    }
    vars_file = work / "vars.json"
    vars_file.write_text(json.dumps(variables))
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"@{vars_file}",
        str(ZTP_PLAYBOOK),
    ] + (["-vvv"] if verbose else [])
    proc = subprocess.run(cmd, env=ansible_env, capture_output=True, text=True, timeout=600, check=False)
    assert results.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr, {r["item"]["name"]: r for r in json.loads(results.read_text())}


def test_30_generated_responses_through_the_action_plugin(pairs, pki, ansible_env, tmp_path):
    mod = _response_module()
    rng = random.Random(7)
    drawn: list[bytes] = []

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(bad_bodies(pairs))
    def collect(raw):
        drawn.append(raw)

    collect()
    bodies: dict[str, bytes] = {"seed": json.dumps(_valid(pairs)).encode()}
    for raw in drawn:  # keep 30 bodies the parser refuses (so every run must fail), few huge ones
        if len(bodies) == 31:
            break
        if len(raw) > 300_000 and rng.random() < 0.7:
            continue
        if _check_outcome(mod, raw, pairs) is not None:
            bodies[f"bad{len(bodies) - 1:02d}"] = raw
    assert len(bodies) == 31
    with _Server(pki, bodies) as srv:
        seed = tmp_path / "seed"
        out, res = _playbook(
            ansible_env,
            tmp_path,
            [
                {
                    "name": "seed",
                    "profile": "t",
                    "hardware_id": "rel-seed",
                    "dest": str(seed),
                    "api_url": srv.url("case/seed"),
                }
            ],
            str(pki.ca_path),
            srv.url("case/seed"),
            verbose=False,
        )
        assert res["seed"]["changed"] is True, res["seed"]
        cases = []
        for name in sorted(n for n in bodies if n != "seed"):
            dest = tmp_path / name
            subprocess.run(["cp", "-a", str(seed), str(dest)], check=True)
            cases.append(
                {
                    "name": name,
                    "profile": "t",
                    "hardware_id": "rel-seed",
                    "dest": str(dest),
                    "force": True,
                    "api_url": srv.url(f"case/{name}"),
                }
            )
        before = {c["name"]: _tree_hash(Path(c["dest"])) for c in cases}
        out, res = _playbook(ansible_env, tmp_path, cases, str(pki.ca_path), srv.url("case/x"))
    assert "Traceback" not in out
    assert TOKEN not in out
    key_lines = [ln for ln in pairs["key"].splitlines() if "-----" not in ln]
    assert not any(ln in out for ln in key_lines)
    for c in cases:
        r = res[c["name"]]
        assert r.get("failed") is True, (c["name"], r)
        assert r["msg"] and "\n" not in r["msg"] and "Traceback" not in r["msg"], r["msg"]
        assert _tree_hash(Path(c["dest"])) == before[c["name"]], c["name"]
    L.record(
        "ztp_generated_action_plugin",
        cases=len(cases),
        messages=sorted({res[c["name"]]["msg"].split(";")[0][:80] for c in cases}),
    )


def test_tls_failures_not_covered_by_integration(pki, pairs, ansible_env, tmp_path):
    """Hostname mismatch (right CA, wrong name) and a server that stalls: one-line errors, files untouched.
    (Wrong CA, connection refused and API timeouts are in tests/integration/test_ztp_module.py.)"""
    body = {"seed": json.dumps(_valid(pairs)).encode()}
    with _Server(pki, body) as good, _Server(pki, body, names=("gateway.invalid",)) as wrong_name:
        seed = tmp_path / "seed"
        _, res = _playbook(
            ansible_env,
            tmp_path,
            [
                {
                    "name": "seed",
                    "profile": "t",
                    "hardware_id": "rel-tls",
                    "dest": str(seed),
                    "api_url": good.url("case/seed"),
                }
            ],
            str(pki.ca_path),
            good.url("case/seed"),
            verbose=False,
        )
        assert res["seed"]["changed"] is True
        cases = []
        for name, url, timeout in (("hostname", wrong_name.url("case/seed"), 10), ("stall", good.url("stall/seed"), 1)):
            dest = tmp_path / name
            subprocess.run(["cp", "-a", str(seed), str(dest)], check=True)
            cases.append(
                {
                    "name": name,
                    "profile": "t",
                    "hardware_id": "rel-tls",
                    "dest": str(dest),
                    "force": True,
                    "api_url": url,
                    "timeout": timeout,
                }
            )
        before = {c["name"]: _tree_hash(Path(c["dest"])) for c in cases}
        out, res = _playbook(ansible_env, tmp_path, cases, str(pki.ca_path), good.url("x"))
    assert "Traceback" not in out and TOKEN not in out
    assert "TLS verification of the ZTP API failed" in res["hostname"]["msg"], res["hostname"]
    assert "did not answer within timeout=1 s" in res["stall"]["msg"], res["stall"]
    for c in cases:
        assert res[c["name"]]["failed"] is True and "\n" not in res[c["name"]]["msg"]
        assert _tree_hash(Path(c["dest"])) == before[c["name"]]


# ---------------------------------------------------------------- corrupt streams into the forwarder


def _corrupt_stream() -> tuple[bytes, str]:
    """The badcrc capture when present, else valid frames interleaved with garbage, bad-CRC and cut frames."""
    if CAPTURE.is_file():
        return CAPTURE.read_bytes(), "spartn_badcrc.log"
    rnd = random.Random(3)
    out = bytearray()
    for frame in L.F.synthetic_spartn(120, size=90):
        r = rnd.random()
        if r < 0.2:
            out += os.urandom(rnd.randrange(1, 60))
        elif r < 0.35:
            bad = bytearray(frame)
            bad[-1] ^= 0x5A  # CRC broken
            out += bad
        elif r < 0.45:
            out += frame[: rnd.randrange(4, len(frame) - 1)]  # cut frame
        elif r < 0.5:
            out += L.F.ubx_frame(0x13, 0x00, b"\x01" * 30)[:-1] + b"\x00"  # UBX with a bad checksum
        out += frame
    return bytes(out), "synthetic"


@pytest.mark.lab
def test_corrupt_spartn_ubx_stream_into_the_forwarder(tmp_path, broker, receiver, daemons):
    data, source = _corrupt_stream()
    valid, garbage = L.F.split_frames(data)  # the simulator's independent framer is the oracle
    expected = [f.raw for f in valid if f.kind == "spartn"]
    assert expected and garbage > 0, (len(expected), garbage)
    rep = MqttReplayer(broker).connect()
    try:
        rep.publish_keys(L.lab_keys())
        creds = L.credentials(tmp_path / "etc", broker=broker, keys=L.lab_keys())
        cfg = L.forwarder_config(
            tmp_path,
            creds,
            ca_file=str(broker.ca_path),
            output={"type": "serial", "device": receiver.device_path, "baudrate": 115200},
        )
        fwd = daemons(cfg)
        fwd.wait_status(lambda s: s["input"]["state"] == "connected" and s["receiver"]["config_state"] == "applied")
        pid = fwd.pid
        rnd = random.Random(5)
        pos = 0
        while pos < len(data):  # arbitrary payload boundaries: frames and garbage split across messages
            step = rnd.randrange(1, 700)
            rep.publish("corrections", data[pos : pos + step])
            pos += step
        got = receiver.wait_frames("spartn", len(expected), timeout=30)
    finally:
        rep.stop()
    assert [f.raw for f in got] == expected
    assert receiver.garbage_bytes == 0, "garbage or a damaged frame reached the receiver"
    st = fwd.wait_status(lambda s: s["streams"]["spartn"]["frames"] >= len(expected))
    assert st["streams"]["spartn"]["frames"] == len(expected)  # garbage is never counted as frames
    # health shows the discarded bytes: every byte that is in no delivered frame, less a partial tail still held
    st = fwd.wait_status(lambda s: s["input"]["garbage_bytes"] > 0)
    assert st["input"]["garbage_bytes"] <= len(data) - sum(map(len, expected))
    assert fwd.alive() and fwd.pid == pid
    L.record(
        "corrupt_stream",
        source=source,
        bytes=len(data),
        valid_spartn=len(expected),
        garbage_bytes_in=garbage,
        delivered=len(got),
    )


# ---------------------------------------------------------------- bad role variables


BAD_VARS = [
    ({"pointperfect_state": "gone"}, "pointperfect_state"),
    ({"pointperfect_backoff_max": "fast"}, "pointperfect_backoff_max"),
    ({"pointperfect_ztp_validate_certs": "perhaps"}, "pointperfect_ztp_validate_certs"),
    ({"pointperfect_ztp_token": "3C1A7F52-6B0E-4C2D-9F41-7A5E00000A01"}, "lowercase"),
    ({"pointperfect_ztp_tags": "not-a-list"}, "pointperfect_ztp_tags"),
]


def test_bad_role_variables_fail_clearly_before_any_change(ansible_env, tmp_path):
    inv = tmp_path / "hosts.ini"
    inv.write_text(
        f"[pointperfect_gateways]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    env = dict(ansible_env, POINTPERFECT_ZTP_TOKEN="3c1a7f52-6b0e-4c2d-9f41-7a5e00000a01")
    etc_before = _tree_hash(Path("/etc/pointperfect"))
    for extra, expected in BAD_VARS:
        vars_file = tmp_path / "bad.json"
        vars_file.write_text(json.dumps(extra))
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(inv),
                "--check",
                "-e",
                f"@{vars_file}",
                str(REPO / "playbooks" / "provision.yml"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, (extra, out[-2000:])
        assert "Traceback" not in out, out[-3000:]
        assert expected in out, (extra, out[-2000:])
        assert "changed=0" in out or "PLAY RECAP" not in out, out[-2000:]
        assert "3c1a7f52-6b0e-4c2d-9f41-7a5e00000a01" not in out.lower()
    assert _tree_hash(Path("/etc/pointperfect")) == etc_before
