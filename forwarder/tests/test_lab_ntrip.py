"""Integration: NTRIP (RTKLIB str2str caster behind stunnel TLS) -> forwarder -> receiver simulator; GGA upstream."""

from __future__ import annotations

import threading

import pytest
from fwd_helpers import credentials, forwarder_config, lab_keys
from pointperfect_sim import frames as F
from pointperfect_sim.lab import Caster

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def caster(pki, tmp_path):
    c = Caster(tmp_path / "caster", mountpoint="NEAR-SPARTN", user="gw-user", password="s3cr3t-ntrip-pw", pki=pki)
    c.start()
    yield c
    c.stop()


def _config(tmp_path, caster, receiver, **ntrip):
    creds = credentials(tmp_path, caster=caster, keys=lab_keys())
    return forwarder_config(
        tmp_path,
        creds,
        input="ntrip",
        ca_file=str(caster.ca_path),
        ntrip={"gga_interval": 1, **ntrip},
        output={"type": "serial", "device": receiver.device_path, "baudrate": 115200},
    )


def _feed_until(caster, receiver, frames, stop):
    """The caster only relays to connected clients: feed in rounds until the receiver has them."""
    while not stop.is_set():
        caster.feed(b"".join(frames))
        if stop.wait(0.5):
            return


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
    fwd = daemons(_config(tmp_path, caster, receiver, tls=False, fixed_position={"lat": 48.5, "lon": -3.25, "alt": 30}))
    st = fwd.wait_status(lambda s: s["input"]["state"] == "connected")
    assert st["input"]["endpoint"] == f"127.0.0.1:{caster.port}"
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
