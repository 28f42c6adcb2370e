"""Integration: NTRIP (RTKLIB str2str caster behind the lab's PointPerfect-like gate and stunnel TLS) -> forwarder ->
receiver simulator; GGA upstream. The gate sends nothing before a valid GGA and answers a second session of one user
with 409 (facts section 3)."""

from __future__ import annotations

import re
import threading
import time

import pytest
from fwd_helpers import credentials, forwarder_config, lab_keys, wait_until
from pointperfect_sim import frames as F
from pointperfect_sim.caster import Caster
from pointperfect_sim.receiver import ReceiverSim

WAITING = "waiting for a position fix (no GGA from the receiver and no fixed_position)"
CONFLICT = "caster refused the connection (409): is another client using this account?"

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def caster(pki, tmp_path):
    c = Caster(tmp_path / "caster", mountpoint="NEAR-SPARTN", user="gw-user", password="s3cr3t-ntrip-pw", pki=pki)
    c.start()
    yield c
    c.stop()


def _config(tmp_path, caster, receiver, sections: dict | None = None, **ntrip):
    creds = credentials(tmp_path, caster=caster, keys=lab_keys())
    return forwarder_config(
        tmp_path,
        creds,
        input="ntrip",
        ca_file=str(caster.ca_path),
        ntrip={"gga_interval": 1, **ntrip},
        output={"type": "serial", "device": receiver.device_path, "baudrate": 115200},
        **(sections or {}),
    )


def _feed_until(caster, receiver, frames, stop):
    """The caster only relays to connected clients: feed in rounds until the receiver has them."""
    while not stop.is_set():
        caster.feed(b"".join(frames))
        if stop.wait(0.5):
            return


def _feeding(caster, receiver, frames):
    """Start feeding `frames` in rounds; returns the stop function."""
    stop = threading.Event()
    feeder = threading.Thread(target=_feed_until, args=(caster, receiver, frames, stop))
    feeder.start()

    def done():
        stop.set()
        feeder.join()

    return done


@pytest.mark.parametrize("version", [2, 1])
def test_ntrip_tls_delivers_frames_and_gga_reaches_caster(tmp_path, caster, receiver, daemons, version):
    fwd = daemons(_config(tmp_path, caster, receiver, version=version))
    st = fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    assert st["input"]["endpoint"] == f"127.0.0.1:{caster.tls_port}"  # tls: true takes the credentials' tls_port
    gga = caster.wait_gga(2, timeout=15)
    assert len(gga) >= 2
    assert gga[0].startswith("$GNGGA") and ",5200.00000,N," in gga[0]  # the receiver's own GGA, unchanged
    sent = F.synthetic_spartn(20)
    rtcm = F.rtcm_1005()
    caster.feed(b"".join(sent) + rtcm)  # the caster relayed our GGA, so this client is connected
    got = receiver.wait_frames("spartn", 20)
    assert [f.raw for f in got] == sent
    assert [f.raw for f in receiver.wait_frames("rtcm", 1)] == [rtcm]
    assert receiver.garbage_bytes == 0
    log = fwd.log()
    assert "s3cr3t-ntrip-pw" not in log
    assert "c0ffee00" not in log and "beefcafe" not in log


def test_ntrip_401_reports_auth_failed(tmp_path, caster, receiver, daemons):
    creds = credentials(tmp_path, caster=caster, keys=lab_keys())
    text = creds.read_text().replace("s3cr3t-ntrip-pw", "wrong-password")
    creds.write_text(text)
    cfg = forwarder_config(
        tmp_path,
        creds,
        input="ntrip",
        ca_file=str(caster.ca_path),
        output={"type": "serial", "device": receiver.device_path, "baudrate": 115200},
    )
    fwd = daemons(cfg)
    st = fwd.wait_status(lambda s: s["input"]["state"] == "auth_failed")
    assert st["input"]["last_error"] == "credentials rejected: re-run provisioning"
    assert st["healthy"] is False
    assert fwd.proc.poll() is None  # never exits on a network-side fault
    assert "wrong-password" not in fwd.log()
    # provisioning fixes the password: the changed credentials file is picked up without a restart
    creds.write_text(text.replace("wrong-password", "s3cr3t-ntrip-pw"))
    fwd.wait_status(lambda s: s["input"]["state"] == "connected", timeout=30)


def test_ntrip_plain_with_fixed_position_and_no_fix(tmp_path, caster, receiver, daemons):
    receiver.quality = 0  # the receiver has no fix: the fixed position is sent instead
    fixed = {"lat": 48.5, "lon": -3.25, "alt": 30}
    fwd = daemons(_config(tmp_path, caster, receiver, tls=False, allow_plain_auth=True, fixed_position=fixed))
    st = fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    assert st["input"]["endpoint"] == f"127.0.0.1:{caster.port}"  # without tls: the credentials' plain port
    assert "the NTRIP password travels in clear text" in fwd.log()  # warned on every connect
    gga = caster.wait_gga(1, timeout=15)
    assert gga and ",4830.00000,N,00315.00000,W," in gga[0]
    stop = threading.Event()
    sent = F.synthetic_spartn(5)
    feeder = threading.Thread(target=_feed_until, args=(caster, receiver, sent, stop))
    feeder.start()
    try:
        assert receiver.wait_frames("spartn", 5)
    finally:
        stop.set()
        feeder.join()
    assert [f.raw for f in receiver.frames_of("spartn")][:5] == sent


def test_plain_tcp_without_allow_plain_auth_is_a_config_error(tmp_path, caster, receiver, daemons):
    fwd = daemons(_config(tmp_path, caster, receiver, tls=False))
    assert fwd.proc.wait(30) == 2
    assert "config error: ntrip.tls: " in fwd.log() and "ntrip.allow_plain_auth" in fwd.log()
    assert caster.client_bytes == b""


def test_ntrip_waits_for_a_fix_then_connects(tmp_path, caster, receiver, daemons):
    receiver.quality = 0  # GGA without a fix, and no fixed_position: nothing to send the caster
    fwd = daemons(_config(tmp_path, caster, receiver))
    st = fwd.wait_status(lambda s: s["input"]["state"] == "waiting_for_position")
    assert st["input"]["last_error"] == WAITING and st["last_error"] == WAITING
    assert st["healthy"] is False
    time.sleep(3)  # several of the receiver's no-fix GGAs
    st = fwd.status()
    assert st["input"]["state"] == "waiting_for_position" and st["input"]["reconnects"] == 0
    assert caster.client_bytes == b""  # no connection, nothing sent
    assert caster.active_users() == []
    assert "connected to" not in fwd.log()
    receiver.quality = 1  # the receiver gets its fix
    st = fwd.wait_status(lambda s: s["input"]["state"] == "connected", 15)
    assert st["input"]["reconnects"] == 0
    gga = caster.wait_gga(1, timeout=15)
    assert gga and gga[0].startswith("$GNGGA") and ",5200.00000,N," in gga[0]
    sent = F.synthetic_spartn(5)
    done = _feeding(caster, receiver, sent)
    try:
        assert receiver.wait_frames("spartn", 5)
    finally:
        done()
    assert [f.raw for f in receiver.frames_of("spartn")][:5] == sent


def test_ntrip_session_kept_through_the_silence_before_the_first_data(tmp_path, caster, receiver, daemons):
    fwd = daemons(_config(tmp_path, caster, receiver, {"watchdog": {"no_data_timeout": 2}}))
    fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    caster.wait_gga(1, timeout=15)
    time.sleep(6)  # three times no_data_timeout without a byte from the caster
    st = fwd.status()
    assert st["input"]["state"] == "connected" and st["input"]["reconnects"] == 0
    assert st["input"]["frames"] == 0
    assert len(caster.wait_gga(5, timeout=5)) >= 5  # GGA kept going out every gga_interval
    sent = F.synthetic_spartn(3)
    done = _feeding(caster, receiver, sent)
    try:
        assert receiver.wait_frames("spartn", 3)
        assert fwd.status()["input"]["reconnects"] == 0
    finally:
        done()
    # after the first data the normal no-data watchdog applies
    st = fwd.wait_status(lambda s: s["input"]["reconnects"] >= 1, 20)
    assert re.fullmatch(r"no data for \d+ s: reconnecting", st["input"]["last_error"])


def test_ntrip_ubx_mga_interleaved_with_spartn_arrives_whole(tmp_path, caster, receiver, daemons):
    fwd = daemons(_config(tmp_path, caster, receiver))
    fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    caster.wait_gga(1, timeout=15)
    spartn = F.synthetic_spartn(4, size=120)
    mga = [f.raw for f in F.split_frames(F.mga_frames(300))[0]][:4]
    want = [frame for pair in zip(spartn, mga, strict=True) for frame in pair]  # SPARTN, MGA, SPARTN, MGA, ...
    done = _feeding(caster, receiver, want)

    def ours():
        return [f.raw for f in receiver.frames if f.kind == "spartn" or f.ubx_id == (0x13, 0x00)]

    try:
        assert wait_until(lambda: len(ours()) >= 2 * len(want), 20)
    finally:
        done()
    got = ours()
    start = got.index(want[0])
    assert got[start : start + len(want)] == want  # in order, each frame whole
    assert set(got) == set(want)
    assert receiver.garbage_bytes == 0
    st = fwd.wait_status(lambda s: s["streams"]["ubx"]["frames"] >= 2 * len(mga))  # the status file lags ~2 s
    assert st["input"]["garbage_bytes"] == 0


def test_ntrip_second_session_of_one_account_is_refused_and_backed_off(tmp_path, caster, receiver, daemons):
    first = daemons(_config(tmp_path / "a", caster, receiver))
    first.wait_status(lambda s: s["input"]["state"] == "connected")
    caster.wait_gga(1, timeout=15)
    other = ReceiverSim(tmp_path / "ttyGNSS2").start()
    try:
        second = daemons(_config(tmp_path / "b", caster, other))
        st = second.wait_status(lambda s: s["input"]["last_error"] == CONFLICT, 30)
        assert st["input"]["state"] in ("connecting", "backoff")  # a normal backoff, not auth_failed
        second.wait_status(lambda s: s["input"]["reconnects"] >= 2, 30)  # keeps retrying at the usual pace
        assert caster.conflicts >= 2
        assert second.status()["input"]["state"] != "auth_failed"
        assert first.status()["input"]["state"] == "connected"
        first.stop()  # the account is free again: the second one gets the session
        second.wait_status(lambda s: s["input"]["state"] == "connected", 30)
    finally:
        other.close()


def test_ntrip_mga_mountpoint_burst_before_the_gga_arrives_whole(pki, tmp_path, receiver, daemons):
    burst = F.mga_frames(1500)  # the -MGA mountpoints send AssistNow right after the answer, before any GGA
    caster = Caster(
        tmp_path / "caster", mountpoint="NEAR-SPARTN-MGA", user="u", password="pw", pki=pki, connect_burst=burst
    )
    caster.start()
    try:
        fwd = daemons(_config(tmp_path, caster, receiver))
        want = [f.raw for f in F.split_frames(burst)[0]]
        assert wait_until(lambda: len([f for f in receiver.frames if f.ubx_id == (0x13, 0x00)]) >= len(want), 20)
        assert [f.raw for f in receiver.frames if f.ubx_id == (0x13, 0x00)][: len(want)] == want
        assert receiver.garbage_bytes == 0
        st = fwd.wait_status(lambda s: s["streams"]["ubx"]["frames"] >= len(want))
        assert st["input"]["state"] == "connected" and st["input"]["reconnects"] == 0
    finally:
        caster.stop()
