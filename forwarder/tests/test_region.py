"""region.py: region choice (boxes, centres, plan, explicit, hysteresis); in the lab, the region chosen from the
receiver's position with one correction topic."""

from __future__ import annotations

import time

import pytest
from fwd_helpers import credentials, forwarder_config, lab_keys
from pointperfect_forwarder.region import REGION_SWITCH_SECONDS, RegionSelector, candidate, in_box
from pointperfect_sim import frames as F
from pointperfect_sim.proc import free_port
from pointperfect_sim.receiver import ReceiverSim
from pointperfect_sim.replay import MqttReplayer
from test_health import metrics_text
from test_outputs import serial_output

ALL = ["au", "eu", "jp", "kr", "us"]
DENVER, AMSTERDAM, TOKYO, SEOUL, SYDNEY = (39.7, -105.0), (52.4, 4.9), (35.7, 139.7), (37.5, 127.0), (-33.9, 151.2)


# --- boxes and centres ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pos", "region"),
    [(DENVER, "us"), (AMSTERDAM, "eu"), (TOKYO, "jp"), (SEOUL, "kr"), (SYDNEY, "au")],
)
def test_box_contains_position(pos, region):
    assert in_box(region, *pos)
    assert candidate(*pos, ALL) == region


def test_outside_every_box_the_nearest_centre_wins():
    assert not any(in_box(r, 19.4, -99.1) for r in ALL)
    assert candidate(19.4, -99.1, ALL) == "us"  # Mexico City
    assert candidate(64.1, -21.9, ALL) == "eu"  # Reykjavik: west of the EU box
    assert candidate(-36.8, 174.8, ALL) == "au"  # Auckland
    assert candidate(1.35, 103.8, ["eu", "us"]) == "eu"  # Singapore: nearer Europe's centre than the US's


def test_only_the_plans_regions_are_candidates():
    assert candidate(*DENVER, ["au", "jp"]) == "jp"  # in no listed box: the nearest listed centre (across 180°)
    assert candidate(*DENVER, ["eu", "jp"]) == "eu"
    assert candidate(*AMSTERDAM, ["us"]) == "us"
    assert candidate(*DENVER, []) is None
    assert candidate(*DENVER, ["sa"]) is None  # a region without a known centre cannot be chosen by position


def test_overlapping_boxes_take_the_nearest_centre():
    # lon 129.5 is the edge of both KR and JP
    assert in_box("kr", 35.0, 129.5) and in_box("jp", 35.0, 129.5)
    assert candidate(35.0, 129.5, ALL) == "kr"


# --- selector ---------------------------------------------------------------------------------------------------------


def test_single_region_plan_is_chosen_at_once():
    sel = RegionSelector(["eu"])
    assert (sel.selected, sel.source) == ("eu", "plan")
    assert sel.update(*DENVER) is False and sel.selected == "eu"


def test_explicit_region_is_kept():
    sel = RegionSelector(["eu", "us"], "us")
    assert (sel.selected, sel.source) == ("us", "inventory")
    for t in range(200):
        sel.update(*AMSTERDAM, at=float(t))
    assert sel.selected == "us"
    assert sel.status() == {"selected": "us", "source": "inventory", "available": ["eu", "us"]}


def test_first_fix_chooses_at_once():
    sel = RegionSelector(ALL)
    assert sel.selected is None and sel.status()["selected"] is None
    assert sel.update(*SEOUL, "fixed_position", at=0.0) is True
    assert (sel.selected, sel.source) == ("kr", "fixed_position")


def test_moving_gateway_switches_after_60_s_of_fixes_outside_the_box():
    now = [0.0]
    sel = RegionSelector(ALL, clock=lambda: now[0])
    sel.update(*DENVER)
    assert sel.selected == "us"
    changed = []
    for _ in range(int(REGION_SWITCH_SECONDS)):  # 0..59 s of fixes in Europe: not yet
        changed.append(sel.update(*AMSTERDAM))
        now[0] += 1.0
    assert not any(changed) and sel.selected == "us"
    assert sel.update(*AMSTERDAM) is True  # the 61st fix, 60 s after the first
    assert (sel.selected, sel.source) == ("eu", "position")


def test_switch_timer_restarts_after_a_gap_or_a_return():
    sel = RegionSelector(ALL)
    sel.update(*DENVER, at=0.0)
    for t in range(0, 50):
        sel.update(*AMSTERDAM, at=100.0 + t)
    sel.update(*AMSTERDAM, at=200.0)  # 51 s without a fix: the fixes must be continuous
    for t in range(1, 60):
        assert sel.update(*AMSTERDAM, at=200.0 + t) is False
    sel.update(*DENVER, at=260.0)  # back home before the 60 s were up
    for t in range(1, 60):
        assert sel.update(*AMSTERDAM, at=260.0 + t) is False
    assert sel.selected == "us"
    assert sel.update(*AMSTERDAM, at=321.0) is True


def test_no_switch_while_inside_the_current_box():
    sel = RegionSelector(ALL)
    sel.update(*SEOUL, at=0.0)
    assert sel.selected == "kr"
    for t in range(1, 300):  # on the KR/JP edge: JP's box too, but still inside KR's
        sel.update(36.0, 129.5, at=float(t))
    assert sel.selected == "kr"
    sel.update(19.4, -99.1, at=400.0)  # Mexico: outside every box, nearest to the US centre
    for t in range(1, 61):
        sel.update(19.4, -99.1, at=400.0 + t)
    assert sel.selected == "us"


def test_same_fix_read_twice_does_not_count_as_time():
    sel = RegionSelector(ALL)
    sel.update(*DENVER, at=0.0)
    for _ in range(100):
        sel.update(*AMSTERDAM, at=10.0)  # a stale fix polled again and again
    assert sel.selected == "us"


def test_available_regions_change_lband_table():
    sel = RegionSelector([])
    assert sel.update(*DENVER, at=0.0) is False and sel.selected is None
    assert sel.set_available(["eu", "us"]) is False
    assert sel.update(*DENVER, at=1.0) is True and sel.selected == "us"
    assert sel.set_available(["eu"]) is True and (sel.selected, sel.source) == ("eu", "plan")
    assert sel.set_available(["eu", "us"]) is True and sel.selected is None  # chosen again from the next fix


# --- lab: the daemon, a broker and a receiver simulator in Denver -----------------------------------------------------

US = (39.7, -105.0, 1600.0)  # Denver
FIVE = ["au", "eu", "jp", "kr", "us"]


@pytest.fixture
def us_receiver(tmp_path):
    """A receiver in Denver that has no fix yet (`quality = 1` gives it one)."""
    sim = ReceiverSim(tmp_path / "ttyGNSS", position=US, quality=0).start()
    yield sim
    sim.close()


@pytest.mark.timeout(120)
def test_region_from_the_receiver_position_one_correction_topic(tmp_path, broker, us_receiver, daemons):
    keys, port = lab_keys(), free_port()
    creds = credentials(tmp_path, broker=broker, regions=FIVE)
    cfg = forwarder_config(
        tmp_path, creds, ca_file=str(broker.ca_path), output=serial_output(us_receiver), health={"metrics_port": port}
    )
    replayer = MqttReplayer(broker).connect()
    try:
        key_frame = replayer.publish_keys(keys)
        fwd = daemons(cfg)
        fwd.wait_status(lambda s: s["input"]["state"] == "connected" and s["receiver"]["config_state"] == "applied")
        assert us_receiver.wait_for(lambda r: key_frame in [f.raw for f in r.frames_of("ubx")])
        # before the first fix: no region, no correction topic, only the keys reach the receiver
        for topic in ("/pp/ip/us", "/pp/ip/eu"):
            replayer.publish(topic, b"".join(F.synthetic_spartn(5)))
        st = fwd.wait_status(lambda s: s["region"]["available"] == FIVE)
        assert st["region"] == {"selected": None, "source": None, "available": FIVE, "topic": None}
        assert st["healthy"] is False and st["last_error"] == "waiting for a position fix"
        assert st["input"]["state"] == "connected"
        time.sleep(1)
        assert us_receiver.frames_of("spartn") == []
        assert "subscribed /pp/ip/" not in fwd.log()

        us_receiver.quality = 1  # first fix, in Denver
        # healthy = connected with the chosen region's topic acknowledged (SUBACK): corrections flow from here on
        st = fwd.wait_status(lambda s: s["region"]["selected"] is not None and s["healthy"])
        assert st["region"] == {"selected": "us", "source": "position", "available": FIVE, "topic": "/pp/ip/us"}
        assert st["input"]["state"] == "connected"
        us, eu = F.synthetic_spartn(40), F.synthetic_spartn(40)
        for i in range(0, 40, 4):
            replayer.publish("/pp/ip/eu", b"".join(eu[i : i + 4]))
            replayer.publish("/pp/ip/us", b"".join(us[i : i + 4]))
        assert [f.raw for f in us_receiver.wait_frames("spartn", len(us))] == us
        time.sleep(0.5)
        assert [f.raw for f in us_receiver.frames_of("spartn")] == us  # nothing of /pp/ip/eu
        assert us_receiver.garbage_bytes == 0
        assert fwd.log().count("mqtt input: subscribed /pp/ip/") == 1  # exactly one correction subscription
        st = fwd.wait_status(lambda s: s["healthy"] is True)
        assert st["last_error"] is None
        body = metrics_text(port)
        assert 'pointperfect_forwarder_region_info{region="us",source="position"} 1.0' in body
        assert "pointperfect_forwarder_lband_pmp_frames_total 0.0" in body
    finally:
        replayer.stop()
