"""The lab against real processes on loopback: the broker (mosquitto, mutual TLS, ACL), the caster (str2str + gate +
stunnel), the credentials a lab device gets, and the `lab up` CLI."""

import base64
import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from pointperfect_sim import frames as F
from pointperfect_sim.broker import MOSQUITTO, Mosquitto
from pointperfect_sim.caster import STR2STR, STUNNEL, Caster, gga_valid
from pointperfect_sim.daemon import write_credentials
from pointperfect_sim.lab import lab_keys
from pointperfect_sim.pki import PKI
from pointperfect_sim.replay import MqttReplayer, capture_payloads, plan_topics

pytestmark = pytest.mark.lab
need_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")
need_caster = pytest.mark.skipif(STR2STR is None or STUNNEL is None, reason="rtklib/stunnel not installed")
KEYS = lab_keys(1661558382000)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def broker(pki, tmp_path_factory):
    if MOSQUITTO is None:
        pytest.skip("mosquitto not installed")
    with Mosquitto(pki, tmp_path_factory.mktemp("broker")) as b:
        yield b


@pytest.fixture(scope="module")
def caster(pki, tmp_path_factory):
    if STR2STR is None or STUNNEL is None:
        pytest.skip("rtklib/stunnel not installed")
    with Caster(tmp_path_factory.mktemp("caster"), mountpoint="NEAR-SPARTN", user="u1", password="p1", pki=pki) as c:
        yield c


# ---------------------------------------------------------------- MQTT helpers

CONNECT = bytes.fromhex("101000044d5154540402003c0004") + b"dev1"


def _mqtt_connack(port, ca, cert=None, key=None) -> bytes:
    """Raw TLS + MQTT CONNECT; returns the CONNACK bytes (raises or returns b'' when the broker refuses)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        sock.sendall(CONNECT)
        return sock.recv(4)


class Device:
    """A paho subscriber with a device certificate, recording (topic, payload) in arrival order."""

    def __init__(self, broker, cert, key, cn="dev"):
        self.got = []
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cn)
        self.client.tls_set(ca_certs=str(broker.ca_path), certfile=str(cert), keyfile=str(key))
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, m.payload))
        self.subacks: set[int] = set()
        self.client.on_subscribe = lambda c, u, mid, *a: self.subacks.add(mid)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.connected.wait(10)

    def subscribe(self, *topics):
        """Subscribe and wait for every SUBACK (retained messages may already have arrived)."""
        mids = {self.client.subscribe(topic, qos=0)[1] for topic in topics}
        deadline = time.monotonic() + 10
        while not mids <= self.subacks and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mids <= self.subacks, "no SUBACK"

    def wait(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.got

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


@need_mosquitto
def test_broker_rejects_no_cert_and_foreign_ca(broker, tmp_path):
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        if _mqtt_connack(broker.port, broker.ca_path) == b"":
            raise ConnectionError("closed")
    other = PKI(tmp_path / "other")
    cert_pem, key_pem = other.issue_client("intruder", 30)
    (tmp_path / "i.crt").write_text(cert_pem)
    (tmp_path / "i.key").write_text(key_pem)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        if _mqtt_connack(broker.port, broker.ca_path, tmp_path / "i.crt", tmp_path / "i.key") == b"":
            raise ConnectionError("closed")


@need_mosquitto
def test_broker_accepts_pki_device(broker):
    cert, key = broker.issue_device("gw-accept")
    assert _mqtt_connack(broker.port, broker.ca_path, cert, key) == b"\x20\x02\x00\x00"
    expired_cert, expired_key = broker.issue_device("gw-expired", days=-1)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        if _mqtt_connack(broker.port, broker.ca_path, expired_cert, expired_key) == b"":
            raise ConnectionError("closed")


@need_mosquitto
def test_device_gets_retained_keys_then_frames_byte_exact(broker):
    sent = F.synthetic_spartn(20)
    with MqttReplayer(broker) as rep:
        key_frame = rep.publish_keys(KEYS)
        dev = Device(broker, *broker.issue_device("gw-frames"), cn="gw-frames")
        try:
            dev.subscribe("/pp/ubx/0236/ip", "/pp/ip/eu")
            assert dev.wait(1)[0] == ("/pp/ubx/0236/ip", key_frame)  # retained: arrives right after subscribing
            rep.publish_all((("corrections", f) for f in sent), interval=0.005)
            got = dev.wait(21)
        finally:
            dev.close()
    assert [p for t, p in got[1:]] == sent
    assert {t for t, p in got[1:]} == {"/pp/ip/eu"}


@need_mosquitto
def test_lband_topics_and_retained_frequencies(broker):
    topics = plan_topics("lband")
    assert (topics["keys"], topics["json_keys"], topics["corrections"]) == ("/pp/ubx/0236/Lb", "/pp/key/Lb", None)
    assert plan_topics("ip+lband", "jp")["corrections"] == "/pp/Lb/jp"
    with MqttReplayer(broker, topics) as rep:
        key_frame = rep.publish_keys(KEYS)
        freq = rep.publish_frequencies({"us": "1556.29", "eu": 1545.26})
    dev = Device(broker, *broker.issue_device("gw-lband"), cn="gw-lband")
    try:
        dev.subscribe("/pp/ubx/0236/Lb", "/pp/frequencies/Lb")  # after the publisher left: retained
        got = dict(dev.wait(2))
    finally:
        dev.close()
    assert got == {"/pp/ubx/0236/Lb": key_frame, "/pp/frequencies/Lb": freq}
    assert json.loads(freq)["frequencies"]["eu"]["current"]["value"] == "1545.26"


@need_mosquitto
def test_devices_cannot_publish(broker):
    a = Device(broker, *broker.issue_device("gw-a"), cn="gw-a")
    b = Device(broker, *broker.issue_device("gw-b"), cn="gw-b")
    try:
        b.subscribe("/pp/ip/eu")
        a.client.publish("/pp/ip/eu", b"forged")
        with MqttReplayer(broker) as rep:
            rep.publish("/pp/ip/eu", b"genuine")
        got = b.wait(1)
        time.sleep(0.3)
    finally:
        a.close()
        b.close()
    assert [p for t, p in got] == [b"genuine"]


@need_mosquitto
def test_restart_keeps_port_and_replayer_reconnects(broker):
    port = broker.port
    rep = MqttReplayer(broker).connect()
    try:
        broker.restart()
        assert broker.port == port
        assert rep.wait_connected(10)
        dev = Device(broker, *broker.issue_device("gw-restart"), cn="gw-restart")
        dev.subscribe("/pp/ip/eu")
        rep.publish("/pp/ip/eu", b"after-restart")
        assert dev.wait(1) == [("/pp/ip/eu", b"after-restart")]
        dev.close()
    finally:
        rep.stop()


def test_capture_payloads_split_into_whole_frames(tmp_path):
    frames = F.synthetic_spartn(12) + [F.spartn_frame(1, 0, b"h" * 300)] * 3
    path = tmp_path / "cap.log"
    path.write_bytes(b"".join(frames))
    payloads = capture_payloads(path, max_bytes=700)
    assert b"".join(payloads) == path.read_bytes()
    for payload in payloads:
        found, garbage = F.split_frames(payload)
        assert garbage == 0 and len({f.raw[1] >> 1 for f in found}) == 1 and len(payload) <= 700


# ---------------------------------------------------------------- NTRIP helpers


def _ntrip(port, user, password, *, mount="NEAR-SPARTN", rev=1, ctx=None):
    """Minimal raw-socket NTRIP client: returns (socket, status line, rest of the first read)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1") if ctx else raw
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    if rev == 2:
        req = (
            f"GET /{mount} HTTP/1.1\r\nHost: 127.0.0.1\r\nNtrip-Version: Ntrip/2.0\r\n"
            f"User-Agent: NTRIP test/2.0\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
        )
    else:
        req = f"GET /{mount} HTTP/1.0\r\nUser-Agent: NTRIP test/1.0\r\nAuthorization: Basic {auth}\r\n\r\n"
    sock.sendall(req.encode())
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(1024)
        if not chunk:
            break
        head += chunk
    line, _, rest = head.partition(b"\r\n")
    return sock, line.decode(), rest


def _recv_exact(sock, n, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


@need_caster
def test_caster_wrong_password_is_401(caster):
    sock, status, _ = _ntrip(caster.port, "u1", "wrong")
    sock.close()
    assert status.split()[1] == "401"
    sock, status, _ = _ntrip(caster.port, "nobody", "p1", rev=2)
    sock.close()
    assert " 401 " in status


@pytest.mark.parametrize("rev", [1, 2])
@need_caster
def test_caster_feed_byte_exact_and_gga_observed(caster, rev):
    sock, status, rest = _ntrip(caster.port, "u1", "p1", rev=rev)
    assert status == "ICY 200 OK"  # str2str answers rev1 and rev2 requests alike
    caster.clear_client_bytes()
    gga = F.gga_sentence(47.1, 8.2, 400.0)
    sock.sendall(gga)
    assert caster.wait_gga(1) == [gga.decode().strip()]
    data = b"".join(F.synthetic_spartn(8)) + F.rtcm_1005()
    caster.feed(data)
    got = _recv_exact(sock, len(data) + len(rest.lstrip(b"\r\n")))
    sock.close()
    assert got.lstrip(b"\r\n") == data


@need_caster
def test_caster_tls_verified_against_ca(caster, pki, tmp_path):
    ctx = ssl.create_default_context(cafile=str(pki.ca_path))
    sock, status, rest = _ntrip(caster.tls_port, "u1", "p1", rev=2, ctx=ctx)
    assert status == "ICY 200 OK"
    caster.clear_client_bytes()
    gga = F.gga_sentence(1.5, 2.5, 3.0)
    sock.sendall(gga)
    assert gga.decode().strip() in caster.wait_gga(1)
    data = b"".join(F.synthetic_spartn(4))
    caster.feed(data)
    assert _recv_exact(sock, len(data) + len(rest.lstrip(b"\r\n"))).lstrip(b"\r\n") == data
    sock.close()
    other = ssl.create_default_context(cafile=str(PKI(tmp_path / "other").ca_path))
    with pytest.raises(ssl.SSLCertVerificationError):
        _ntrip(caster.tls_port, "u1", "p1", ctx=other)


def _silent(sock, wait=0.6) -> bytes:
    """What arrives on `sock` within `wait` seconds (b"" when nothing does)."""
    sock.settimeout(wait)
    try:
        return sock.recv(4096)
    except TimeoutError:
        return b""


def test_gga_valid():
    good = F.gga_sentence(47.1, 8.2, 400.0)
    assert gga_valid(good) and gga_valid(good.decode())
    assert not gga_valid(F.gga_sentence(quality=0))  # no fix
    assert not gga_valid(good.replace(b"*", b"*0").replace(good[-4:-2], b"00"))  # checksum wrong
    assert not gga_valid(good[:-5] + b"*00\r\n")
    assert not gga_valid(b"$GNRMC,120000.00,A*00\r\n") and not gga_valid(b"GGA without dollar")


@need_caster
def test_gate_sends_nothing_before_a_valid_gga(caster):
    sock, status, rest = _ntrip(caster.port, "u1", "p1")
    try:
        assert status == "ICY 200 OK" and rest == b""
        dropped = caster.dropped_before_gga
        caster.feed(b"".join(F.synthetic_spartn(3)))
        assert _silent(sock) == b""
        assert caster.dropped_before_gga > dropped  # the stream reached the gate and was dropped there
        bad = F.gga_sentence(47.1, 8.2, 400.0)
        sock.sendall(F.gga_sentence(quality=0) + bad[:-5] + b"*00\r\n")  # no fix; wrong checksum
        sock.sendall(b"$GNTXT,01,01,02,hello*00\r\n")
        caster.feed(b"".join(F.synthetic_spartn(2)))
        assert _silent(sock) == b""
        gga = F.gga_sentence(47.1, 8.2, 400.0)
        sock.sendall(gga[:20])  # a GGA split over two writes
        time.sleep(0.1)
        sock.sendall(gga[20:])
        deadline = time.monotonic() + 10
        while gga.decode().strip() not in caster.gga() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gga.decode().strip() in caster.gga()
        data = b"".join(F.synthetic_spartn(5))
        caster.feed(data)
        assert _recv_exact(sock, len(data)) == data  # exactly the stream fed after the GGA
    finally:
        sock.close()


@need_caster
def test_gate_without_the_one_session_rule_admits_a_second_session(tmp_path):
    """one_session_per_user=False (a bench's reference client shares the account): both sessions get 200."""
    lone = Caster(tmp_path / "caster", user="u1", password="p1", one_session_per_user=False).start()
    socks = []
    try:
        for rev in (1, 2):
            sock, status, _ = _ntrip(lone.port, "u1", "p1", rev=rev)
            socks.append(sock)
            assert status in ("ICY 200 OK", "HTTP/1.1 200 OK"), status
        assert lone.conflicts == 0
    finally:
        for sock in socks:
            sock.close()
        lone.stop()


@need_caster
def test_gate_one_session_per_user(caster, pki):
    first, status, _ = _ntrip(caster.port, "u1", "p1")
    assert status == "ICY 200 OK"
    try:
        assert caster.active_users() == ["u1"]
        conflicts = caster.conflicts
        second, status, rest = _ntrip(caster.port, "u1", "p1", rev=2)
        rest += _recv_exact(second, 400, timeout=2)
        second.close()
        assert status == "HTTP/1.1 409 Conflict" and b"Connection: close" in rest
        assert caster.conflicts == conflicts + 1
        ctx = ssl.create_default_context(cafile=str(pki.ca_path))  # through stunnel: the same gate
        tls, status, _ = _ntrip(caster.tls_port, "u1", "p1", ctx=ctx)
        tls.close()
        assert status == "HTTP/1.1 409 Conflict"
        wrong, status, _ = _ntrip(caster.port, "u1", "nope")  # bad credentials still get str2str's 401
        wrong.close()
        assert " 401 " in status
        table, status, _ = _ntrip(caster.port, "u1", "p1", mount="")  # a source-table request is no session
        table.close()
        assert status.startswith("SOURCETABLE 200")
        caster.clear_client_bytes()
        first.sendall(F.gga_sentence(47.1, 8.2, 400.0))  # the first session is unharmed
        assert caster.wait_gga(1)
        data = b"".join(F.synthetic_spartn(2))
        caster.feed(data)
        assert _recv_exact(first, len(data)) == data
    finally:
        first.close()
    again, status, _ = _ntrip(caster.port, "u1", "p1")  # released once the first one disconnected
    again.close()
    assert status == "ICY 200 OK"
    deadline = time.monotonic() + 5
    while caster.active_users() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert caster.active_users() == []


@need_caster
def test_gate_connect_burst_before_gga(caster):
    burst = F.mga_frames(300)
    caster.gate.connect_burst = burst  # what a -MGA mountpoint sends at connect
    try:
        sock, status, rest = _ntrip(caster.port, "u1", "p1")
        try:
            assert status == "ICY 200 OK"
            assert rest + _recv_exact(sock, len(burst) - len(rest)) == burst
            caster.feed(b"".join(F.synthetic_spartn(2)))
            assert _silent(sock) == b""
        finally:
            sock.close()
    finally:
        caster.gate.connect_burst = None


@pytest.mark.parametrize(
    "case",
    [
        ("ip", ("us", "eu"), "/pp/ubx/0236/ip", {"eu": "/pp/ip/eu", "us": "/pp/ip/us"}, None),
        ("ip+lband", ("eu", "jp"), "/pp/ubx/0236/Lb", {"eu": "/pp/Lb/eu", "jp": "/pp/Lb/jp"}, "/pp/frequencies/Lb"),
        ("lband", ("eu", "us"), "/pp/ubx/0236/Lb", {}, "/pp/frequencies/Lb"),
    ],
)
def test_write_credentials_plans(tmp_path, pki, case):
    plan, regions, keys, corrections, frequencies = case
    broker = type("B", (), {"pki": pki, "port": 8883})()
    path = write_credentials(tmp_path, broker=broker, keys=KEYS, cn="gw-1", regions=regions, plan=plan)
    creds = json.loads(path.read_text())
    assert creds["plan"] == plan and creds["service"] == "mqtt" and creds["regions"] == sorted(regions)
    assert creds["topics"] == {
        "keys": keys,
        "corrections": corrections,
        "assistnow": "/pp/ubx/mga",
        "frequencies": frequencies,
    }
    assert creds["mqtt"]["port"] == 8883 and (tmp_path / "client.key").stat().st_mode & 0o777 == 0o600


def test_write_credentials_defaults(tmp_path, pki):
    broker = type("B", (), {"pki": pki, "port": 8883})()
    caster = type("C", (), {"port": 2101, "tls_port": 2102, "mountpoint": "NEAR-SPARTN", "user": "u", "password": "p"})
    creds = json.loads(write_credentials(tmp_path / "a", broker=broker, caster=caster(), cn="gw").read_text())
    assert creds["plan"] == "ip" and creds["regions"] == ["eu"]
    assert creds["topics"]["corrections"] == {"eu": "/pp/ip/eu"}
    assert creds["ntrip"]["port"] == 2101 and creds["ntrip"]["tls_port"] == 2102
    creds = json.loads(write_credentials(tmp_path / "b", caster=caster(), cn="gw").read_text())
    assert creds["plan"] == "ntrip" and creds["mqtt"] is None and creds["regions"] == []
    assert creds["topics"] == {"keys": None, "corrections": {}, "assistnow": None, "frequencies": None}
    creds = json.loads(write_credentials(tmp_path / "d", broker=broker, cn="gw", plan="lband").read_text())
    assert creds["regions"] == [] and creds["topics"]["corrections"] == {}  # an L-band answer names no region
    with pytest.raises(ValueError, match="needs a broker"):
        write_credentials(tmp_path / "c", cn="gw", plan="lband")


# ---------------------------------------------------------------- CLI


@need_mosquitto
@need_caster
def test_lab_up_cli(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "pointperfect_sim", "lab", "up", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        info_path = tmp_path / "lab.json"
        deadline = time.monotonic() + 30
        while not info_path.exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        info = json.loads(info_path.read_text())
        broker = Mosquitto(PKI(info["pki"]), tmp_path / "client", info["broker"]["port"])
        dev = Device(broker, *broker.issue_device("gw-demo"), cn="gw-demo")
        dev.subscribe(info["topics"]["keys"], info["topics"]["corrections"])
        got = dev.wait(2, timeout=12)
        dev.close()
        assert got[0] == (info["topics"]["keys"], F.spartnkey_frame(info["dynamickeys"]))
        assert got[1][0] == "/pp/ip/eu" and F.split_frames(got[1][1])[1] == 0
        c = info["caster"]
        ctx = ssl.create_default_context(cafile=info["ca"])
        sock, status, rest = _ntrip(c["tls_port"], c["username"], c["password"], mount=c["mountpoint"], ctx=ctx)
        assert status == "ICY 200 OK"
        sock.sendall(F.gga_sentence(52.0, 5.0, 10.0))  # the caster sends nothing before a valid GGA
        sock.settimeout(12)
        data = rest + sock.recv(4096)
        sock.close()
        frames, _ = F.split_frames(data.lstrip(b"\r\n"))
        assert frames and frames[0].kind == "spartn"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    assert not (tmp_path / "lab.json").exists()


def test_caster_chooses_another_port_when_its_own_was_taken(tmp_path, monkeypatch):
    """A port the caster chose can be taken before it binds it (an outgoing connection's ephemeral port): it
    chooses another; a port the caller gave stays an error."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        caster = Caster(tmp_path / "chosen", mountpoint="NEAR-SPARTN", user="u1", password="p1")
        caster.port = taken.getsockname()[1]  # as if another socket took it after the choice
        with caster:
            assert caster.port != taken.getsockname()[1]
            with socket.create_connection(("127.0.0.1", caster.port), timeout=5):
                pass
        given = Caster(tmp_path / "given", port=taken.getsockname()[1], user="u1", password="p1")
        with pytest.raises(OSError), given:
            pass
    finally:
        taken.close()


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")
def test_broker_chooses_another_port_when_its_own_was_taken(pki, tmp_path):
    """The broker's own port taken before its first start (bound, not listening: as by an outgoing connection's
    ephemeral port): it chooses another; a restart keeps the port it has, and a port the caller gave stays an
    error."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    try:
        broker = Mosquitto(pki, tmp_path / "chosen")
        broker.port = taken.getsockname()[1]  # as if another socket took it after the choice
        with broker:
            assert broker.port != taken.getsockname()[1]
            port = broker.port
            assert _mqtt_connack(port, broker.ca_path, *broker.issue_device("d1"))[3] == 0
            broker.restart()
            assert broker.port == port
        with pytest.raises(RuntimeError), Mosquitto(pki, tmp_path / "given", port=taken.getsockname()[1]):
            pass
    finally:
        taken.close()


@pytest.mark.skipif(STR2STR is None or STUNNEL is None, reason="str2str or stunnel not installed")
@pytest.mark.parametrize("which", ["tls_port", "feed_port"])
def test_caster_chooses_another_tls_or_str2str_port_when_its_own_was_taken(pki, tmp_path, which):
    """stunnel's TLS port or str2str's feed port, chosen by the caster and taken before its first start (bound, not
    listening: as by an outgoing connection's ephemeral port): the start fails, finds the port taken, and starts
    again on another."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    try:
        caster = Caster(tmp_path / which, mountpoint="NEAR-SPARTN", user="u1", password="p1", pki=pki)
        setattr(caster, which, taken.getsockname()[1])
        try:
            caster.start(timeout=3)
            assert getattr(caster, which) != taken.getsockname()[1]
            ctx = ssl.create_default_context(cafile=str(caster.ca_path))
            with (
                socket.create_connection(("127.0.0.1", caster.tls_port), timeout=5) as raw,
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
            ):
                sock.sendall(b"GET / HTTP/1.0\r\nUser-Agent: NTRIP lab-probe\r\n\r\n")
                assert sock.recv(64).startswith(b"SOURCETABLE 200")
        finally:
            caster.stop()
    finally:
        taken.close()
