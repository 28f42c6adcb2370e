"""Unit tests of the renewal decision table: every reason, thresholds and precedence."""

import pytest
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_decision import (
    DAY,
    KEYS_MARGIN_DAYS,
    REASONS,
    days_left,
    decide,
)

NOW = 1_800_000_000.0


def mqtt_state(**over):
    state = {
        "credentials": True,
        "hardware_id": "gw-01",
        "mqtt": True,
        "certificate_ok": True,
        "certificate_not_after": NOW + 200 * DAY,
        "recorded_not_after": NOW + 200 * DAY,
        "keys_end": NOW + 40 * DAY,
        "ntrip": False,
        "confirmed_at": NOW - 30 * DAY,
    }
    state.update(over)
    return state


def ntrip_state(**over):
    state = {
        "credentials": True,
        "hardware_id": "gw-01",
        "mqtt": False,
        "ntrip": True,
        "confirmed_at": NOW - 1 * DAY,
        "keys_end": None,
    }
    state.update(over)
    return state


@pytest.mark.parametrize(
    ("state", "kwargs", "reason"),
    [
        ({}, {}, "missing"),
        ({"credentials": False}, {}, "missing"),
        (mqtt_state(certificate_ok=False), {}, "missing"),
        (mqtt_state(recorded_not_after=NOW + 100 * DAY), {}, "missing"),  # interrupted write: cert newer than json
        (mqtt_state(mqtt=False, ntrip=False), {}, "missing"),
        (mqtt_state(hardware_id="gw-02"), {}, "hardware_id_changed"),
        (mqtt_state(certificate_not_after=NOW + 29 * DAY, recorded_not_after=NOW + 29 * DAY), {}, "expiring"),
        (mqtt_state(certificate_not_after=NOW - DAY, recorded_not_after=NOW - DAY), {}, "expiring"),
        (mqtt_state(keys_end=NOW + 10 * DAY), {}, "valid"),  # MQTT: keys arrive live on the key topic
        (mqtt_state(keys_end=NOW - DAY), {}, "valid"),
        (ntrip_state(keys_end=NOW + 10 * DAY), {}, "valid"),  # NTRIP-only: keys matter within 7 days only
        (ntrip_state(keys_end=NOW + 6 * DAY), {}, "expiring"),
        (
            mqtt_state(certificate_not_after=NOW + 50 * DAY, recorded_not_after=NOW + 50 * DAY),
            {"renew_before_days": 60},
            "expiring",
        ),
        (ntrip_state(confirmed_at=NOW - 8 * DAY), {}, "stale"),
        (ntrip_state(confirmed_at=None), {}, "stale"),
        (ntrip_state(confirmed_at=NOW - 2 * DAY), {"refresh_after_days": 1}, "stale"),
        (mqtt_state(), {"force": True}, "forced"),
        (ntrip_state(), {"force": True}, "forced"),
        (mqtt_state(), {}, "valid"),
        (ntrip_state(), {}, "valid"),
        (mqtt_state(ntrip=True, confirmed_at=NOW - DAY), {}, "valid"),  # MQTT plan that also carries NTRIP
        (mqtt_state(ntrip=True, confirmed_at=NOW - 9 * DAY), {}, "stale"),
        (mqtt_state(keys_end=None), {}, "valid"),
        (mqtt_state(confirmed_at=NOW - 300 * DAY), {}, "valid"),  # MQTT-only never goes stale
    ],
)
def test_reasons(state, kwargs, reason):
    decision = decide(state, "gw-01", NOW, **kwargs)
    assert decision.reason == reason
    assert decision.call_api is (reason != "valid")
    assert decision.detail


def test_every_reason_is_reachable():
    seen = {
        decide(s, "gw-01", NOW, force=f).reason
        for s, f in [
            ({}, False),
            (mqtt_state(hardware_id="x"), False),
            (ntrip_state(keys_end=NOW), False),
            (ntrip_state(confirmed_at=0), False),
            (mqtt_state(), True),
            (mqtt_state(), False),
        ]
    }
    assert seen == set(REASONS)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (mqtt_state(certificate_ok=False, hardware_id="x"), "missing"),
        (mqtt_state(hardware_id="x", keys_end=NOW), "hardware_id_changed"),
        (mqtt_state(certificate_not_after=NOW, recorded_not_after=NOW, ntrip=True, confirmed_at=0), "expiring"),
        (ntrip_state(keys_end=NOW, confirmed_at=0), "expiring"),
        (ntrip_state(confirmed_at=0), "stale"),
    ],
)
def test_precedence_over_force(state, reason):
    assert decide(state, "gw-01", NOW, force=True).reason == reason


def test_threshold_boundaries():
    exactly = mqtt_state(certificate_not_after=NOW + 30 * DAY, recorded_not_after=NOW + 30 * DAY)
    assert decide(exactly, "gw-01", NOW).reason == "valid"
    just_under = mqtt_state(certificate_not_after=NOW + 30 * DAY - 1, recorded_not_after=NOW + 30 * DAY - 1)
    assert decide(just_under, "gw-01", NOW).reason == "expiring"
    assert decide(ntrip_state(confirmed_at=NOW - 7 * DAY), "gw-01", NOW).reason == "valid"
    assert decide(ntrip_state(confirmed_at=NOW - 7 * DAY - 1), "gw-01", NOW).reason == "stale"
    margin = KEYS_MARGIN_DAYS * DAY
    assert decide(ntrip_state(keys_end=NOW + margin), "gw-01", NOW).reason == "valid"
    assert decide(ntrip_state(keys_end=NOW + margin - 1), "gw-01", NOW).reason == "expiring"


def test_detail_names_the_numbers():
    d = decide(mqtt_state(certificate_not_after=NOW + 12.5 * DAY, recorded_not_after=NOW + 12.5 * DAY), "gw-01", NOW)
    assert "12 days" in d.detail and "renew_before_days=30" in d.detail


def test_days_left():
    assert days_left(None, NOW) is None
    assert days_left(NOW + 364.9 * DAY, NOW) == 364
    assert days_left(NOW - 0.5 * DAY, NOW) == -1
