"""receiver.py: its CFG-VALSET (ACK, retries, failure), GGA grace and fixed position, reset detection;
in the lab, a receiver simulator configured and recovered after a power cycle."""

from __future__ import annotations

import pytest
from fwd_helpers import lab_keys
from pointperfect_forwarder.receiver import Receiver, valset_frame
from pointperfect_forwarder.stats import Stats
from pointperfect_sim import frames as F
from test_inputs_mqtt import mqtt_config


def _receiver(clock):
    sent, resets = [], []
    stats = Stats("ntrip", "x:1", "serial", "/dev/x")
    rx = Receiver(
        stats,
        sent.append,
        resets.append,
        configure=True,
        port="UART2",
        source="lband",
        have_keys=lambda: True,
        clock=lambda: clock[0],
    )
    return rx, stats, sent, resets


def test_valset_contents():
    assert valset_frame("UART2", "lband") == F.cfg_valset({0x20A70001: 1, 0x10750005: 1})


def test_receiver_config_ack_retry_and_failure():
    clock = [0.0]
    rx, stats, sent, _ = _receiver(clock)
    rx.tick()
    assert [f.data for f in sent] == [valset_frame("UART2", "lband")] and stats.receiver_state == "pending"
    for _ in range(3):
        clock[0] += 2.1
        rx.tick()
    valsets = lambda: [f for f in sent if f.data[2:4] == b"\x06\x8a"]  # noqa: E731
    assert len(valsets()) == 3 and stats.receiver_state == "failed"  # three tries without an ACK
    clock[0] += 61
    rx.tick()
    assert len(valsets()) == 4 and stats.receiver_state == "pending"
    assert sent[-1].data == b"\xb5\x62\x02\x36\x00\x00\x38\xaa"  # and the periodic key poll went out
    rx.feed(F.ubx_frame(0x05, 0x01, b"\x06\x8a"))
    assert stats.receiver_state == "applied"


def test_receiver_gga_grace_and_fixed_position():
    clock = [0.0]
    rx, _, _, _ = _receiver(clock)
    fix = F.gga_sentence(52.0, 5.0, 10.0)
    rx.feed(fix)
    rx.feed(F.gga_sentence(quality=0))  # fix lost: the last good GGA is kept
    clock[0] += 100
    assert rx.gga(120, None) == fix
    clock[0] += 30
    assert rx.gga(120, None) is None  # grace over, no fixed position
    fixed = rx.gga(120, {"lat": -33.5, "lon": 151.25, "alt": 20})
    assert b",3330.00000,S,15115.00000,E,1," in fixed


def test_receiver_reset_from_banner_or_missing_keys_debounced():
    clock = [0.0]
    rx, stats, _, resets = _receiver(clock)
    rx.feed(F.boot_notice(with_inf=True))
    assert len(resets) == 1 and stats.receiver_resets == 1  # one banner = one reset
    clock[0] += 10
    rx.feed(F.ubx_frame(0x02, 0x36, F.spartnkey_payload([])))  # poll answer: no keys held
    assert len(resets) == 2 and stats.receiver_state == "pending"


# --- lab: the daemon and a receiver simulator on a pty ----------------------------------------------------------------


@pytest.mark.timeout(90)
def test_receiver_configured_and_reset_recovered(tmp_path, broker, receiver, daemons):
    keys = lab_keys()
    fwd = daemons(mqtt_config(tmp_path, broker, receiver, keys=keys))
    st = fwd.wait_status(lambda s: s["receiver"]["config_state"] == "applied")
    assert receiver.config == {0x20A70001: 0, 0x10770005: 1}
    assert receiver.wait_for(
        lambda r: [k["value"] for k in r.keys] == [keys["current"]["value"], keys["next"]["value"]]
    )
    assert st["keys"]["current"]["valid"] is True
    loads = receiver.key_loads
    receiver.reset()  # power cycle: keys and RAM config gone, boot banner printed (re-send may come at once)
    st = fwd.wait_status(lambda s: s["receiver"]["resets_detected"] >= 1 and s["receiver"]["config_state"] == "applied")
    assert receiver.wait_for(lambda r: r.key_loads > loads and len(r.keys) == 2)
    assert receiver.wait_for(lambda r: r.config == {0x20A70001: 0, 0x10770005: 1})  # the status may lead the ACK
    assert "reset detected" in fwd.log()


def test_receiver_parses_only_the_newest_gga_with_a_fix_of_a_batch(monkeypatch):
    from pointperfect_forwarder import receiver  # noqa: PLC0415 - only here

    parsed = []
    real = receiver.gga_position
    monkeypatch.setattr(receiver, "gga_position", lambda raw: parsed.append(raw) or real(raw))
    rx, _, _, _ = _receiver([0.0])
    older, newer = F.gga_sentence(52.0, 5.0, 10.0), F.gga_sentence(48.0, 11.0, 10.0)
    rx.feed(older + newer + F.gga_sentence(quality=0))  # the newest has no fix: the one before it counts
    assert rx.last_gga == newer and rx.position(10)[:2] == pytest.approx((48.0, 11.0))
    assert len(parsed) == 2
    parsed.clear()
    rx.feed(b"".join(F.gga_sentence(50.0 + i / 10, 5.0, 10.0) for i in range(10)))
    assert len(parsed) == 1 and rx.position(10)[:2] == pytest.approx((50.9, 5.0))
    parsed.clear()
    rx.feed(F.gga_sentence(quality=0) + F.gga_sentence(quality=0))  # no fix in the batch: the last good one stays
    assert len(parsed) == 2 and rx.position(10)[:2] == pytest.approx((50.9, 5.0))
