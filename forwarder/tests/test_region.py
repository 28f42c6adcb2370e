"""Unit: region choice (boxes, centres, plan, explicit, hysteresis), its config, L-band frequencies, NEO-D9S tuning."""

from __future__ import annotations

import json

import pytest
from pointperfect_forwarder import config
from pointperfect_forwarder.framing import Frame
from pointperfect_forwarder.lband import D9s, d9s_valset, parse_frequencies
from pointperfect_forwarder.outputs import Output
from pointperfect_forwarder.region import REGION_SWITCH_SECONDS, RegionSelector, candidate, in_box
from pointperfect_forwarder.stats import Stats
from pointperfect_sim import frames as F

ALL = ["au", "eu", "jp", "kr", "us"]
DENVER, AMSTERDAM, TOKYO, SEOUL, SYDNEY = (39.7, -105.0), (52.4, 4.9), (35.7, 139.7), (37.5, 127.0), (-33.9, 151.2)

# --- boxes and centres -----------------------------------------------------------------------------------------------


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


# --- selector --------------------------------------------------------------------------------------------------------


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


# --- config ----------------------------------------------------------------------------------------------------------


def _files(tmp_path, cfg: dict, topics: dict | None = None, regions: list | None = None, plan: str = "ip"):
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_text("cert")
    key.write_text("key")
    creds = {
        "format": 1,
        "plan": plan,
        "mqtt": {"host": "h", "port": 8883, "client_id": "cid", "certificate": str(cert), "private_key": str(key)},
        "topics": topics or {"keys": "/pp/ubx/0236/ip", "corrections": {r: f"/pp/ip/{r}" for r in ALL}},
        "dynamickeys": None,
    }
    if regions is not None:
        creds["regions"] = regions
    (tmp_path / "credentials.json").write_text(json.dumps(creds))
    path = tmp_path / "forwarder.json"
    path.write_text(json.dumps({"credentials_file": str(tmp_path / "credentials.json"), **cfg}))
    return str(path)


def test_config_region_mapping_and_old_list_form(tmp_path):
    s = config.load(_files(tmp_path, {}, regions=ALL))
    assert s.region is None and s.regions == ALL and s.mqtt.corrections["us"] == "/pp/ip/us"
    old = {"keys": "/pp/ubx/0236/ip", "corrections": ["/pp/ip/eu", "/pp/ip/us"]}
    s = config.load(_files(tmp_path, {"mqtt": {"region": None}}, old))
    assert s.mqtt.corrections == {"eu": "/pp/ip/eu", "us": "/pp/ip/us"} and s.regions == ["eu", "us"]
    s = config.load(_files(tmp_path, {"mqtt": {"region": "US"}}, old))
    assert s.region == "us"


def test_config_explicit_region_must_be_in_the_plan(tmp_path):
    with pytest.raises(config.ConfigError) as err:
        config.load(_files(tmp_path, {"mqtt": {"region": "kr"}}, regions=["eu", "us"]))
    assert (
        str(err.value) == "config error: mqtt.region: 'kr' is not in this plan (eu, us): set it to one of them or auto"
    )
    topics = {"keys": "/pp/ubx/0236/ip", "corrections": {"eu": "/pp/ip/eu"}}
    with pytest.raises(config.ConfigError, match=r"^config error: mqtt.region: 'us' has no correction topic"):
        config.load(_files(tmp_path, {"mqtt": {"region": "us"}}, topics, regions=["eu", "us"]))
    with pytest.raises(config.ConfigError, match=r"^config error: mqtt.region: must be auto or a region"):
        config.load(_files(tmp_path, {"mqtt": {"region": "e u"}}))


def test_config_lband_and_fixed_position(tmp_path):
    lb = {"keys": "/pp/ubx/0236/Lb", "corrections": {}, "assistnow": None, "frequencies": None}
    s = config.load(_files(tmp_path, {"receiver": {"source": "lband"}}, lb, regions=[], plan="lband"))
    assert s.lband_mode == "keys_only" and s.mqtt.corrections == {}
    assert s.mqtt.frequencies_topic == "/pp/frequencies/Lb"
    cfg = {"receiver": {"source": "lband"}, "lband": {"device": "/dev/ttyD9S", "port": "UART2"}}
    s = config.load(_files(tmp_path, {**cfg, "fixed_position": {"lat": 39.7, "lon": -105.0}}, lb, plan="lband"))
    assert s.lband_mode == "d9s" and s.lband == {"device": "/dev/ttyD9S", "baudrate": 38400, "port": "UART2"}
    assert s.fixed_position == {"lat": 39.7, "lon": -105.0}
    s = config.load(_files(tmp_path, {"ntrip": {"fixed_position": {"lat": 1, "lon": 2}}}))
    assert s.fixed_position == {"lat": 1, "lon": 2}  # the old place still counts
    with pytest.raises(config.ConfigError, match=r"no correction topic \(an L-band plan: set receiver.source lband\)"):
        config.load(_files(tmp_path, {}, lb, plan="lband"))


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"lband": {"device": "/dev/x"}}, "lband.device: a NEO-D9S needs receiver.source lband"),
        (
            {"receiver": {"source": "lband"}, "lband": {"device": "/dev/ttyACM0"}},
            "lband.device: must not be output.device (the NEO-D9S has its own port)",
        ),
        ({"lband": {"port": "SPI"}}, "lband.port: must be one of USB, UART1, UART2"),
        ({"lband": {"baudrate": 0}}, "lband.baudrate: must be between 50 and 4000000"),
        ({"fixed_position": {"lat": 0, "lon": 181}}, "fixed_position.lon: must be between -180 and 180"),
        ({"fixed_position": {"lat": 0, "lon": 0, "h": 1}}, "fixed_position.h: unknown field"),
    ],
)
def test_config_lband_errors(tmp_path, cfg, message):
    with pytest.raises(config.ConfigError) as err:
        config.load(_files(tmp_path, cfg))
    assert str(err.value) == f"config error: {message}"


# --- L-band frequencies ----------------------------------------------------------------------------------------------


def test_frequencies_service_shape_and_variants():
    assert parse_frequencies(F.frequencies_payload({"us": "1556.29", "eu": "1545.26"})) == {
        "us": 1556290000,
        "eu": 1545260000,
    }
    assert parse_frequencies(b'{"frequencies": {"US": {"current": {"value": 1556.29}}}}') == {"us": 1556290000}
    assert parse_frequencies(b'{"us": "1556.29", "eu": 1545260000}') == {"us": 1556290000, "eu": 1545260000}
    assert parse_frequencies(b'{"eu": {"value": "1545260"}}') == {"eu": 1545260000}  # kHz
    listed = b'{"frequencies": [{"region": "jp", "frequency": "1539.8125"}, {"name": "au", "value": "x"}]}'
    assert parse_frequencies(listed) == {"jp": 1539812500}
    for bad in (b"", b"[1]", b'{"us": "no"}', b'{"us": 5}', b"\xff"):
        with pytest.raises(ValueError):
            parse_frequencies(bad)


# --- NEO-D9S ---------------------------------------------------------------------------------------------------------

PMP_KEYS = {  # key ids (u-blox interface description), written out independently of pyubx2's database
    0x30B10012: 2200,  # SEARCH_WINDOW
    0x10B10016: 0,  # USE_SERVICE_ID
    0x30B10017: 21845,  # SERVICE_ID
    0x30B10013: 2400,  # DATA_RATE
    0x10B10014: 1,  # USE_DESCRAMBLER
    0x30B10015: 26969,  # DESCRAMBLER_INIT
    0x10B10019: 0,  # USE_PRESCRAMBLING
    0x50B1001A: 0xE15AE893E15AE893,  # UNIQUE_WORD
}


def test_d9s_valset_contents():
    want = {0x40B10011: 1556290000, **PMP_KEYS, 0x20910320: 1}  # CENTER_FREQUENCY ... MSGOUT_UBX_RXM_PMP_USB
    assert d9s_valset(1556290000, "USB") == F.cfg_valset(want)
    assert d9s_valset(1545260000, "UART2") == F.cfg_valset({0x40B10011: 1545260000, **PMP_KEYS, 0x2091031F: 1})


class FakeD9sPort(Output):
    kind = "serial"

    def __init__(self):
        super().__init__("/dev/ttyD9S")
        self.writes: list[bytes] = []

    def open(self):
        pass

    def write_some(self, data):
        self.writes.append(bytes(data))
        return len(data)

    def close(self):
        pass


def _d9s(clock, freq):
    from pointperfect_forwarder.backoff import Backoff  # noqa: PLC0415 - only here

    stats = Stats("mqtt", "x:1", "serial", "/dev/x")
    relayed: list[Frame] = []
    port = FakeD9sPort()
    d9s = D9s(
        {"device": port.target, "baudrate": 38400, "port": "USB"},
        stats,
        relayed.append,
        lambda: freq[0],
        backoff=Backoff(1, 2, 5),
        no_data_timeout=30,
        output=port,
        clock=lambda: clock[0],
    )
    return d9s, stats, relayed, port


ACK = F.ubx_frame(0x05, 0x01, b"\x06\x8a")


def test_d9s_tunes_retries_relays_and_retunes():
    clock, freq = [0.0], [None]
    d9s, stats, relayed, port = _d9s(clock, freq)
    d9s.open()
    d9s.tick()
    assert port.writes == [] and stats.d9s_state == "pending"  # no frequency yet
    freq[0] = 1556290000
    d9s.tick()
    assert port.writes == [d9s_valset(1556290000, "USB")]
    for _ in range(3):
        clock[0] += 2.1
        d9s.tick()
    assert len(port.writes) == 3 and stats.d9s_state == "failed"  # three tries without an ACK
    clock[0] += 61
    d9s.tick()
    d9s.feed(ACK)
    assert stats.d9s_state == "applied"
    pmp = [F.rxm_pmp_frame(bytes([i]) * 100) for i in range(3)]
    d9s.feed(b"".join(pmp) + F.ubx_frame(0x0A, 0x38, b"\0" * 4))  # MON-PMP is not relayed
    assert [f.data for f in relayed] == pmp and stats.pmp_frames == 3
    freq[0] = 1545260000  # the topic moved the frequency
    d9s.tick()
    assert port.writes[-1] == d9s_valset(1545260000, "USB") and stats.d9s_state == "pending"
    d9s.feed(ACK)
    n = len(port.writes)
    clock[0] += 10
    d9s.feed(F.d9s_boot_notice())  # reset: RAM config gone
    d9s.tick()
    assert len(port.writes) == n + 1 and stats.d9s_state == "pending"
    d9s.feed(ACK)
    clock[0] += 31  # silent for longer than the no-data timeout: tuned again
    d9s.tick()
    assert len(port.writes) == n + 2


# --- MQTT input: one correction topic, switched with the region ------------------------------------------------------


class FakeClient:
    def __init__(self):
        self.calls: list[tuple] = []

    def subscribe(self, topic, qos=0):
        self.calls.append(("subscribe", topic))
        return 0, len(self.calls)

    def unsubscribe(self, topic):
        self.calls.append(("unsubscribe", topic))


class FakePipeline:
    def __init__(self):
        self.topic: str | None = None
        self.submitted: list[Frame] = []
        self.freqs: list[bytes] = []

    def submit(self, frame, priority=False):
        self.submitted.append(frame)

    def correction_topic(self):
        return self.topic

    def frequencies(self, payload):
        self.freqs.append(payload)

    def assistnow_full_wanted(self):
        return True


class Msg:
    def __init__(self, topic, payload):
        self.topic, self.payload = topic, payload


def test_mqtt_input_follows_the_region_with_one_correction_topic():
    from pointperfect_forwarder.backoff import Backoff  # noqa: PLC0415 - only here
    from pointperfect_forwarder.config import MqttSettings  # noqa: PLC0415
    from pointperfect_forwarder.inputs.mqtt import MqttInput  # noqa: PLC0415 - paho only for this test

    cfg = MqttSettings("h", 1, "cid", "c", "k", 60, "/pp/ubx/0236/ip", {r: f"/pp/ip/{r}" for r in ALL}, None, None)
    pipe, client = FakePipeline(), FakeClient()
    mqtt = MqttInput(
        cfg, None, Stats("mqtt", "h:1", "serial", "/dev/x"), pipe, backoff=Backoff(1, 2, 5), no_data_timeout=30
    )
    mqtt._subscribe_rest(client)  # after the key topic's SUBACK
    assert client.calls == []  # no region yet: no correction topic
    pipe.topic = "/pp/ip/us"
    mqtt._follow_region(client)
    mqtt._follow_region(client)
    assert client.calls == [("subscribe", [("/pp/ip/us", 0)])]
    us, eu = F.synthetic_spartn(3), F.synthetic_spartn(3)
    mqtt._on_message(client, None, Msg("/pp/ip/us", us[0] + us[1][:10]))  # the second frame is cut here
    pipe.topic = "/pp/ip/eu"  # the gateway moved
    mqtt._follow_region(client)
    assert client.calls[1:] == [("unsubscribe", "/pp/ip/us"), ("subscribe", [("/pp/ip/eu", 0)])]
    mqtt._on_message(client, None, Msg("/pp/ip/us", us[1][10:] + us[2]))  # in flight from the old topic: dropped
    mqtt._on_message(client, None, Msg("/pp/ip/eu", b"".join(eu)))
    assert [f.data for f in pipe.submitted] == [us[0], *eu]


def test_mqtt_input_lband_subscribes_frequencies_and_no_corrections():
    from pointperfect_forwarder.backoff import Backoff  # noqa: PLC0415 - only here
    from pointperfect_forwarder.config import MqttSettings  # noqa: PLC0415
    from pointperfect_forwarder.inputs.mqtt import MqttInput  # noqa: PLC0415 - paho only for this test

    cfg = MqttSettings("h", 1, "cid", "c", "k", 60, "/pp/ubx/0236/Lb", {}, None, "/pp/frequencies/Lb")
    pipe, client = FakePipeline(), FakeClient()
    mqtt = MqttInput(
        cfg, None, Stats("mqtt", "h:1", "serial", "/dev/x"), pipe, backoff=Backoff(1, 2, 5), no_data_timeout=30
    )
    mqtt._subscribe_rest(client)
    assert client.calls == [("subscribe", [("/pp/frequencies/Lb", 0)])]
    payload = F.frequencies_payload({"us": "1556.29"})
    mqtt._on_message(client, None, Msg("/pp/frequencies/Lb", payload))
    assert pipe.freqs == [payload] and pipe.submitted == []
