"""Tests of the ZTP simulator over real HTTPS on loopback (TLS verified against the simulator CA)."""

import datetime as dt
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import pointperfect_sim
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pointperfect_sim import __main__ as cli
from pointperfect_sim import profiles as prof
from pointperfect_sim.client import SimClient, SimError
from pointperfect_sim.server import KEY_PERIOD_MS, dynamic_keys, run_in_thread, start
from sim_tokens import T_IP, T_OTHER

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _cert(body: dict) -> x509.Certificate:
    return x509.load_pem_x509_certificate(body["certificate"].encode())


def _days_left(body: dict) -> float:
    return (_cert(body).not_valid_after_utc - dt.datetime.now(dt.timezone.utc)).total_seconds() / 86400


def _ok(sim: SimClient, token: str, hwid: str, **kw) -> dict:
    resp = sim.ztp(token, hwid, **kw)
    assert resp.status == 200, resp.text
    return resp.json()


def _put(sim: SimClient, token: str, profile: dict) -> dict:
    """PUT a profile whose devices are activated on their first call unless the test sets not_activated_calls."""
    return sim.put_profile(token, {"not_activated_calls": 0, **profile})


# ----- the 200 body, MQTT plans


def test_ip_plan_body_matches_the_documented_shape(sim, sim_handle):
    resp = sim.ztp(T_IP, "gw-01", given_name="Gateway 01", tags=["ztp"])
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {
        "clientId",
        "certificate",
        "privateKey",
        "brokerHost",
        "supportsLband",
        "supportsMqtt",
        "dynamickeys",
        "subscriptions",
        "subscriptionsTitle",
        "rotatingKeyTitle",
    }
    assert str(uuid.UUID(body["clientId"])) == body["clientId"]
    assert body["brokerHost"] == "127.0.0.1"
    assert (body["supportsMqtt"], body["supportsLband"]) == (True, False)
    assert body["privateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    cert = _cert(body)
    key = serialization.load_pem_private_key(body["privateKey"].encode(), password=None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert.subject.rfc4514_string() == f"CN={body['clientId']}"
    ca = x509.load_pem_x509_certificate(Path(sim_handle.ca_path).read_bytes())
    assert cert.issuer == ca.subject
    assert 364 < _days_left(body) <= 365
    assert isinstance(body["subscriptionsTitle"], str) and body["subscriptionsTitle"]
    assert isinstance(body["rotatingKeyTitle"], str) and body["rotatingKeyTitle"]


def test_dynamic_keys_are_realistic(sim):
    keys = _ok(sim, T_IP, "gw-01")["dynamickeys"]
    now_ms = time.time() * 1000
    cur, nxt = keys["current"], keys["next"]
    assert cur["duration"] == 2419199999 and nxt["duration"] == 2505599999  # as XPLR's sample shows them
    assert cur["start"] <= now_ms < cur["start"] + cur["duration"]
    assert nxt["start"] == cur["start"] + cur["duration"] + 1
    assert HEX32.match(cur["value"]) and HEX32.match(nxt["value"]) and cur["value"] != nxt["value"]
    # Starts sit on the 28-day grid of the documented example (1661558382000 = GPS week 2224, tow 518400).
    assert (cur["start"] - 1661558382000) % KEY_PERIOD_MS == 0


def test_dynamic_keys_roll_over_next_becomes_current():
    seed = "11" * 32
    now = int(time.time() * 1000)
    now_keys = dynamic_keys(seed, now)
    later = dynamic_keys(seed, now_keys["next"]["start"] + 1000)
    assert {k: later["current"][k] for k in ("start", "value")} == {k: now_keys["next"][k] for k in ("start", "value")}
    assert later["next"]["start"] == now_keys["next"]["start"] + KEY_PERIOD_MS
    assert dynamic_keys("22" * 32, now)["current"]["value"] != now_keys["current"]["value"]


# u-blox/XPLR-HPG-software XPLR-HPG-SW/bin/emuZtpResponse.json: the subscriptions of a real ip+lband answer
XPLR_IP_LBAND = [
    ("L-band + IP key distribution topic", "/pp/ubx/0236/Lb"),
    ("L-band + IP AssistNow topic", "/pp/ubx/mga"),
]
for _name, _r in (("EU", "eu"), ("US", "us"), ("AU", "au"), ("Japan", "jp")):
    XPLR_IP_LBAND.append((f"L-band + IP correction topic for {_name} region", f"/pp/Lb/{_r}"))
    if _r == "au":
        continue
    XPLR_IP_LBAND += [
        (f"L-band + IP geographic area definition topic for {_name} region", f"/pp/Lb/{_r}/gad"),
        (f"L-band + IP high-precision atmosphere correction topic for {_name} region", f"/pp/Lb/{_r}/hpac"),
        (f"L-band + IP GNSS orbit, clocks and bias topic for {_name} region", f"/pp/Lb/{_r}/ocb"),
        (f"L-band + IP GNSS clock topic for {_name} region", f"/pp/Lb/{_r}/clk"),
    ]
    joined = ";".join(f"/pp/Lb/{_r}/{s}" for s in ("gad", "hpac", "ocb", "clk"))
    if _r == "us":
        XPLR_IP_LBAND.append(("L-band + IP frequencies topic", "/pp/frequencies/Lb"))
        joined += ";/pp/frequencies/Lb"
    XPLR_IP_LBAND.append((None, joined))


def _pairs(subs):
    return [(s.get("description"), s["path"]) for s in subs]


def test_ip_lband_subscriptions_are_xplrs_sample(sim):
    _put(sim, T_OTHER, {"plan": "ip+lband"})  # default region: every region of the plan
    body = _ok(sim, T_OTHER, "gw-lb")
    assert _pairs(body["subscriptions"]) == XPLR_IP_LBAND
    assert (body["supportsMqtt"], body["supportsLband"]) == (True, True)
    assert body["subscriptionsTitle"] == "Topics" and body["rotatingKeyTitle"] == "L-band + IP Dynamic Keys"
    assert "region" not in body


def test_ip_subscriptions_every_region_with_sub_streams(sim):
    _put(sim, T_OTHER, {"plan": "ip"})
    subs = _ok(sim, T_OTHER, "gw-01")["subscriptions"]
    described = {s["path"]: s["description"] for s in subs if "description" in s}
    assert described["/pp/ubx/0236/ip"] == "IP key distribution topic"
    assert described["/pp/ubx/mga"] == "IP AssistNow topic"
    tops = [p for p in described if re.fullmatch(r"/pp/ip/[a-z]{2}", p)]
    assert tops == ["/pp/ip/eu", "/pp/ip/us", "/pp/ip/kr", "/pp/ip/au", "/pp/ip/jp"]
    assert described["/pp/ip/eu"] == "IP correction topic for EU region"
    assert described["/pp/ip/kr"] == "IP correction topic for KR region"
    assert described["/pp/ip/jp"] == "IP correction topic for Japan region"
    assert described["/pp/ip/jp/hpac"] == "IP high-precision atmosphere correction topic for Japan region"
    assert not any(p.startswith(("/pp/Lb", "/pp/frequencies", "/pp/key")) for p in described)
    path_only = [s["path"] for s in subs if set(s) == {"path"}]
    assert "/pp/ip/us/gad;/pp/ip/us/hpac;/pp/ip/us/ocb;/pp/ip/us/clk" in path_only
    assert all(";" in p for p in path_only)


def test_lband_only_plan_has_no_correction_topic(sim):
    _put(sim, T_OTHER, {"plan": "lband"})
    body = _ok(sim, T_OTHER, "gw-lb")
    assert (body["supportsMqtt"], body["supportsLband"]) == (False, True)
    paths = [s["path"] for s in body["subscriptions"]]
    assert paths == [
        "/pp/ubx/0236/Lb",
        "/pp/ubx/mga",
        "/pp/key/Lb",
        "/pp/frequencies/Lb",
        "/pp/ubx/0236/Lb;/pp/key/Lb;/pp/frequencies/Lb",
    ]
    assert body["rotatingKeyTitle"] == "L-band Dynamic Keys"
    assert prof.normalize({"plan": "lband"})["region"] == ["eu", "us"]  # its beams, used only for frequencies


def test_region_subset_and_defaults(sim):
    _put(sim, T_OTHER, {"plan": "ip", "region": ["us", "eu"]})
    paths = [s["path"] for s in _ok(sim, T_OTHER, "gw-1")["subscriptions"]]
    assert [p for p in paths if re.fullmatch(r"/pp/ip/[a-z]{2}", p)] == ["/pp/ip/eu", "/pp/ip/us"]
    _put(sim, T_OTHER, {"plan": "ip+lband", "region": "jp"})
    subs = _ok(sim, T_OTHER, "gw-2")["subscriptions"]
    assert ("L-band + IP correction topic for Japan region", "/pp/Lb/jp") in _pairs(subs)
    assert ("L-band + IP frequencies topic", "/pp/frequencies/Lb") in _pairs(subs)  # without US: after the last
    assert prof.normalize({})["region"] == ["eu", "us", "kr", "au", "jp"]
    assert prof.normalize({"plan": "ip+lband"})["region"] == ["eu", "us", "au", "jp"]
    with pytest.raises(prof.ProfileError):
        prof.normalize({"plan": "ip+lband", "region": "kr"})


def test_new_device_is_not_activated_on_its_first_call(sim):
    sim.put_profile(T_OTHER, {"plan": "ip"})  # the default: not_activated_calls 1
    assert prof.normalize({})["not_activated_calls"] == 1
    first = _ok(sim, T_OTHER, "gw-new")
    assert "certificate" not in first and "privateKey" not in first and first["supportsMqtt"] is True
    second = _ok(sim, T_OTHER, "gw-new")
    assert second["certificate"].startswith("-----BEGIN CERTIFICATE-----") and second["clientId"] == first["clientId"]
    sim.put_profile(T_OTHER, {"plan": "ip", "cert_days": 30})  # a new profile restarts the counters ...
    assert "certificate" in _ok(sim, T_OTHER, "gw-new")  # ... but an activated device stays activated
    assert "certificate" not in _ok(sim, T_OTHER, "gw-other")  # while another new one is not activated yet
    sim.put_profile(T_OTHER, {"plan": "ntrip"})
    assert "rtcmCredentials" not in _ok(sim, T_OTHER, "gw-ntrip")
    assert _ok(sim, T_OTHER, "gw-ntrip")["rtcmCredentials"]["httpPort"] == "2101"  # a string


def test_not_activated_answer_survives_a_restart(tmp_path):
    with run_in_thread(tmp_path, {T_IP: {}}) as first:
        pending = _ok(first.client(), T_IP, "gw-01", given_name="Gateway 1")
    with run_in_thread(tmp_path, {T_IP: {}}) as second:
        again = _ok(second.client(), T_IP, "gw-01")  # still not activated: a new count after the restart
        assert again == pending  # same clientId and the same keys (the key seed was saved)
        assert "certificate" in _ok(second.client(), T_IP, "gw-01")


def test_demo_pending_needs_three_calls():
    assert prof.demo()[prof.DEMO_PENDING]["not_activated_calls"] == 3


def test_broker_host_and_cert_days_from_profile(sim):
    _put(sim, T_OTHER, {"broker_host": "localhost", "cert_days": 30})
    body = _ok(sim, T_OTHER, "gw-1")
    assert body["brokerHost"] == "localhost"
    assert 29 < _days_left(body) <= 30


# ----- NTRIP


def test_ntrip_plan_per_device_credentials_and_string_port(sim):
    _put(sim, T_OTHER, {"plan": "ntrip", "ntrip": {"host": "localhost", "port": 2201, "mountpoint": "NEAR-RTCM"}})
    a = _ok(sim, T_OTHER, "gw-a")
    b = _ok(sim, T_OTHER, "gw-b")
    for body in (a, b):
        assert "certificate" not in body and "privateKey" not in body and "clientId" not in body
        rc = body["rtcmCredentials"]
        assert set(rc) == {"endpoint", "httpPort", "userName", "password", "mountPoint"}
        assert rc["endpoint"] == "localhost"
        assert rc["httpPort"] == "2201" and isinstance(rc["httpPort"], str)
        assert rc["mountPoint"] == "NEAR-RTCM"
    assert a["rtcmCredentials"]["userName"] != b["rtcmCredentials"]["userName"]
    assert a["rtcmCredentials"]["password"] != b["rtcmCredentials"]["password"]
    assert _ok(sim, T_OTHER, "gw-a") == a


def test_ntrip_shared_credentials(sim):
    shared = {"user": "caster", "password": "s3cret"}
    _put(sim, T_OTHER, {"plan": "ntrip", "ntrip": {"shared_credentials": shared}})
    for hwid in ("gw-a", "gw-b"):
        rc = _ok(sim, T_OTHER, hwid)["rtcmCredentials"]
        assert (rc["userName"], rc["password"]) == ("caster", "s3cret")
        assert (rc["endpoint"], rc["httpPort"], rc["mountPoint"]) == ("127.0.0.1", "2101", "NEAR-SPARTN")


def test_live_both_has_mqtt_and_rtcm(sim):
    _put(sim, T_OTHER, {"plan": "ip", "live_both": True})
    body = _ok(sim, T_OTHER, "gw-1")
    assert body["privateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert body["supportsMqtt"] is True
    assert body["rtcmCredentials"]["httpPort"] == "2101"


# ----- repeat calls, rotate, expire, persistence


def test_same_device_gets_same_credentials_other_device_gets_its_own(sim):
    first = _ok(sim, T_IP, "gw-01")
    again = _ok(sim, T_IP, "gw-01", given_name="renamed")
    assert again == first
    other = _ok(sim, T_IP, "gw-02")
    assert other["clientId"] != first["clientId"]
    assert other["privateKey"] != first["privateKey"]
    # Dynamic keys belong to the plan, not the device.
    assert other["dynamickeys"] == first["dynamickeys"]


def test_return_existing_false_rejects_repeat(sim):
    _put(sim, T_OTHER, {"return_existing": False})
    assert sim.ztp(T_OTHER, "gw-1").status == 200
    resp = sim.ztp(T_OTHER, "gw-1")
    assert (resp.status, resp.text) == (403, "Device already registered")
    assert sim.ztp(T_OTHER, "gw-2").status == 200


def test_rotate_gives_new_secrets_same_client_id(sim):
    _put(sim, T_OTHER, {"plan": "ip", "live_both": True})
    before = _ok(sim, T_OTHER, "gw-1")
    info = sim.rotate(T_OTHER, "gw-1")
    assert info["generation"] == 2
    after = _ok(sim, T_OTHER, "gw-1")
    assert after["clientId"] == before["clientId"]
    assert after["certificate"] != before["certificate"]
    assert after["privateKey"] != before["privateKey"]
    assert after["dynamickeys"]["current"]["value"] != before["dynamickeys"]["current"]["value"]
    assert after["rtcmCredentials"]["password"] != before["rtcmCredentials"]["password"]
    assert after["rtcmCredentials"]["userName"] == before["rtcmCredentials"]["userName"]
    assert _ok(sim, T_OTHER, "gw-1") == after
    with pytest.raises(SimError, match="404"):
        sim.rotate(T_OTHER, "never-seen")


def test_expire_reissues_cert_with_days_left(sim):
    before = _ok(sim, T_IP, "gw-01")
    info = sim.expire(T_IP, "gw-01", 5)
    after = _ok(sim, T_IP, "gw-01")
    assert 4.9 < _days_left(after) <= 5
    assert after["privateKey"] == before["privateKey"]
    assert after["certificate"] != before["certificate"]
    assert info["certificate_not_after"] == _cert(after).not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    sim.expire(T_IP, "gw-01", -1)
    assert _days_left(_ok(sim, T_IP, "gw-01")) < 0
    with pytest.raises(SimError, match="400"):
        sim.expire(T_IP, "gw-01", "soon")


def test_restart_returns_same_credentials(tmp_path):
    profiles = {T_IP: {"not_activated_calls": 0}}
    with run_in_thread(tmp_path, profiles) as first:
        body = _ok(first.client(), T_IP, "gw-01")
        ca = Path(first.ca_path).read_text()
    assert not (tmp_path / "endpoint.json").exists()
    assert ((tmp_path / "devices.json").stat().st_mode & 0o777) == 0o600  # it holds private keys
    with run_in_thread(tmp_path, profiles) as second:
        assert Path(second.ca_path).read_text() == ca
        assert _ok(second.client(), T_IP, "gw-01") == body


def test_endpoint_json(sim_handle):
    info = json.loads((sim_handle.endpoint_json).read_text())
    assert info["url"] == sim_handle.url
    assert re.match(r"^https://127\.0\.0\.1:\d+/ztp/pointperfect/credentials$", info["url"])
    assert info["admin"] == info["url"].replace("/ztp/pointperfect/credentials", "/_sim")
    assert info["ca"] == sim_handle.ca_path and info["ca"].endswith("pki/ca.pem")
    assert info["pid"] == os.getpid()
    assert (sim_handle.endpoint_json.stat().st_mode & 0o777) == 0o644


# ----- counters and admin


def test_calls_count_only_credential_calls(sim):
    sim.ztp(T_IP, "gw-01")
    sim.ztp(T_IP, "gw-01")
    sim.ztp(T_IP, "gw-02")
    sim.ztp("00000000-0000-4000-8000-000000000000", "gw-01")
    sim.profiles()
    sim.devices()
    calls = sim.calls()
    assert calls == {
        "total": 4,
        "by_token": {T_IP: 3, "00000000-0000-4000-8000-000000000000": 1},
        "by_device": {f"{T_IP}/gw-01": 2, f"{T_IP}/gw-02": 1, "00000000-0000-4000-8000-000000000000/gw-01": 1},
    }
    sim.reset("calls")
    assert sim.calls() == {"total": 0, "by_token": {}, "by_device": {}}
    assert len(sim.devices()) == 2  # "calls" scope keeps devices


def test_handle_calls_matches_admin_api(sim, sim_handle):
    sim.ztp(T_IP, "gw-01")
    assert sim_handle.calls() == sim.calls()
    assert sim_handle.calls()["total"] == 1


def test_reset_all_forgets_devices_and_profile_overrides(sim):
    first = _ok(sim, T_IP, "gw-01")
    _put(sim, T_IP, {"error": "no_plan"})
    sim.reset()
    assert sim.devices() == []
    second = _ok(sim, T_IP, "gw-01")  # profile is back to the startup one
    assert second["clientId"] != first["clientId"]


def test_profile_admin_validation(sim):
    with pytest.raises(SimError, match="400"):
        _put(sim, T_OTHER, {"plan": "satellite"})
    with pytest.raises(SimError, match="400"):
        _put(sim, T_OTHER, {"plna": "ip"})
    with pytest.raises(SimError, match="400"):
        _put(sim, T_OTHER, {"plan": "lband", "region": "kr"})
    stored = _put(sim, T_OTHER, {"plan": "ntrip"})
    assert stored["ntrip"]["port"] == 2101 and stored["return_existing"] is True
    assert sim.profiles()[T_OTHER]["plan"] == "ntrip"
    sim.delete_profile(T_OTHER)
    assert sim.ztp(T_OTHER, "gw").status == 401


# ----- errors


def test_unknown_wrong_case_and_bad_token_look_the_same(sim):
    _put(sim, T_OTHER, {"error": "bad_token"})
    answers = [
        sim.ztp(T_OTHER, "gw"),
        sim.ztp("ffffffff-ffff-4fff-8fff-ffffffffffff", "gw"),
        sim.ztp(T_IP.upper(), "gw"),
        sim.ztp("not-a-uuid", "gw"),
    ]
    assert {(r.status, r.text, r.headers["content-type"]) for r in answers} == {
        (401, "Invalid token", "text/plain; charset=utf-8")
    }


@pytest.mark.parametrize(
    ("error", "text"),
    [
        ("already_registered", "Device already registered"),
        ("not_whitelisted", "Device hardware code not whitelisted"),
    ],
)
def test_documented_403_texts(sim, error, text):
    _put(sim, T_OTHER, {"error": error})
    for _ in range(2):  # permanent by default
        resp = sim.ztp(T_OTHER, "gw")
        assert (resp.status, resp.text) == (403, text)


def test_no_plan_text_names_a_device_uuid(sim):
    _put(sim, T_OTHER, {"error": "no_plan"})
    resp = sim.ztp(T_OTHER, "gw")
    assert resp.status == 403
    assert re.fullmatch(
        r"No plan for device device:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", resp.text
    )


def test_json_error_format(sim):
    _put(sim, T_OTHER, {"error": "not_whitelisted", "error_format": "json"})
    resp = sim.ztp(T_OTHER, "gw")
    assert resp.status == 403
    assert resp.json() == {"message": "Device hardware code not whitelisted"}


def test_rate_limit_with_retry_after_then_success(sim):
    _put(sim, T_OTHER, {"error": "rate_limit", "error_calls": 2, "retry_after": 7})
    for _ in range(2):
        resp = sim.ztp(T_OTHER, "gw")
        assert resp.status == 429
        assert resp.headers["retry-after"] == "7"
    assert sim.ztp(T_OTHER, "gw").status == 200
    # error_calls counts per device: another device also gets its two 429s first.
    assert sim.ztp(T_OTHER, "gw-2").status == 429


@pytest.mark.parametrize(("status", "retry"), [(500, None), (502, None), (503, "1")])
def test_server_errors(sim, status, retry):
    _put(sim, T_OTHER, {"error": "server_error", "error_status": status, "error_calls": 1})
    resp = sim.ztp(T_OTHER, "gw")
    assert resp.status == status
    assert resp.headers.get("retry-after") == retry
    assert sim.ztp(T_OTHER, "gw").status == 200


def test_put_profile_restarts_error_calls(sim):
    _put(sim, T_OTHER, {"error": "server_error", "error_calls": 1})
    assert sim.ztp(T_OTHER, "gw").status == 500
    assert sim.ztp(T_OTHER, "gw").status == 200
    _put(sim, T_OTHER, {"error": "server_error", "error_calls": 1})
    assert sim.ztp(T_OTHER, "gw").status == 500


def test_malformed_is_200_with_invalid_json(sim):
    _put(sim, T_OTHER, {"error": "malformed"})
    resp = sim.ztp(T_OTHER, "gw")
    assert resp.status == 200
    assert resp.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        resp.json()


def test_timeout_holds_the_request_past_the_client_timeout(sim):
    _put(sim, T_OTHER, {"error": "timeout", "timeout_seconds": 3, "error_calls": 1})
    start_t = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout, OSError)):
        sim.ztp(T_OTHER, "gw", timeout=0.5)
    assert time.monotonic() - start_t < 2.5
    assert sim.calls()["by_device"][f"{T_OTHER}/gw"] == 1
    assert sim.ztp(T_OTHER, "gw").status == 200


def test_delay(sim):
    _put(sim, T_OTHER, {"delay": 0.6})
    start_t = time.monotonic()
    assert sim.ztp(T_OTHER, "gw").status == 200
    assert time.monotonic() - start_t >= 0.6


def test_not_activated_calls(sim):
    _put(sim, T_OTHER, {"not_activated_calls": 2})
    pending = [_ok(sim, T_OTHER, "gw") for _ in range(2)]
    for body in pending:
        assert "certificate" not in body and "privateKey" not in body
        assert body["supportsMqtt"] is True
    active = _ok(sim, T_OTHER, "gw")
    assert active["privateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert active["clientId"] == pending[0]["clientId"]


def test_not_activated_with_return_existing_false_still_activates(sim):
    _put(sim, T_OTHER, {"not_activated_calls": 1, "return_existing": False})
    assert "certificate" not in _ok(sim, T_OTHER, "gw")
    assert "certificate" in _ok(sim, T_OTHER, "gw")
    assert sim.ztp(T_OTHER, "gw").text == "Device already registered"


def test_not_activated_ntrip_has_no_rtcm_credentials(sim):
    _put(sim, T_OTHER, {"plan": "ntrip", "not_activated_calls": 1})
    assert "rtcmCredentials" not in _ok(sim, T_OTHER, "gw")
    assert "rtcmCredentials" in _ok(sim, T_OTHER, "gw")


# ----- request validation (as a real HTTP client sends it)


def test_request_validation(sim, sim_handle):
    ca = sim_handle.ca_path
    good = {"token": T_IP, "hardwareId": "gw", "givenName": "gw"}
    cases = [
        (requests.post(sim_handle.url, data=json.dumps(good), headers={"Content-Type": "text/plain"}, verify=ca), 415),
        (requests.post(sim_handle.url, data="{not json", headers={"Content-Type": "application/json"}, verify=ca), 400),
        (requests.post(sim_handle.url, json=[good], verify=ca), 400),
        (requests.post(sim_handle.url, json={"token": T_IP, "givenName": "gw"}, verify=ca), 400),
        (requests.post(sim_handle.url, json={**good, "givenName": ""}, verify=ca), 400),
        (requests.post(sim_handle.url, json={**good, "tags": "ztp"}, verify=ca), 400),
        (requests.get(sim_handle.url, verify=ca), 405),
        (requests.post(sim_handle.url.replace("credentials", "other"), json=good, verify=ca), 404),
    ]
    for resp, status in cases:
        assert resp.status_code == status, resp.text
    assert cases[-2][0].headers["Allow"] == "POST"
    assert sim.calls()["total"] == 6  # POSTs to the endpoint count; GET and other paths do not
    ok = requests.post(
        sim_handle.url, json={**good, "tags": ["ztp"]}, verify=ca, headers={"Accept": "application/json"}
    )
    assert ok.status_code == 200 and ok.json()["privateKey"].startswith("-----BEGIN RSA PRIVATE KEY-----")


def test_tls_is_verified_against_the_sim_ca(sim_handle):
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(sim_handle.url, json={}, verify=True, timeout=5)
    ctx = ssl.create_default_context(cafile=sim_handle.ca_path)
    with (
        socket.create_connection(("127.0.0.1", sim_handle.port)) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.getpeercert()["subjectAltName"] == (("IP Address", "127.0.0.1"), ("DNS", "localhost"))


def test_refuses_non_loopback(tmp_path):
    with pytest.raises(ValueError, match="loopback"):
        start(tmp_path, {}, host="0.0.0.0")


# ----- command line


def test_cli_serve_and_sigterm(tmp_path):
    profiles_file = tmp_path / "profiles.json"
    profiles_file.write_text(json.dumps({T_IP: {"plan": "ntrip", "not_activated_calls": 0}}))
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "pointperfect_sim", "serve", "--state-dir", str(state), "--port", "0"]
    proc = subprocess.Popen(
        [*cmd, "--profiles", str(profiles_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while not (state / "endpoint.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client = SimClient(state / "endpoint.json")
        assert client.pid == proc.pid
        assert _ok(client, T_IP, "gw")["rtcmCredentials"]["httpPort"] == "2101"
        assert client.calls()["total"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert not (state / "endpoint.json").exists()


def test_cli_export_chains_to_the_state_ca(tmp_path, capsys):
    state = tmp_path / "state"
    assert cli.main(["export", "--state-dir", str(state), "--out", str(tmp_path / "out"), "--names", "localhost"]) == 0
    out = tmp_path / "out"
    ca = x509.load_pem_x509_certificate((out / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((out / "server.pem").read_bytes())
    assert (state / "pki" / "ca.pem").read_bytes() == (out / "ca.pem").read_bytes()
    assert cert.issuer == ca.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    key = serialization.load_pem_private_key((out / "server.key").read_bytes(), password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_cli_dispatches_lab(monkeypatch):
    seen = []
    fake = types.ModuleType("pointperfect_sim.lab")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "pointperfect_sim.lab", fake)
    monkeypatch.setattr(pointperfect_sim, "lab", fake, raising=False)
    assert cli.main(["lab", "--demo"]) == 0
    assert cli.main([]) == 0
    assert seen == [["--demo"], []]


def test_demo_profiles_are_valid_and_cover_the_plans():
    demo = prof.demo()
    assert all(prof.TOKEN_RE.match(t) for t in demo)
    assert {p["plan"] for p in demo.values()} == {"ip", "lband", "ip+lband", "ntrip"}
    assert demo[prof.DEMO_NTRIP]["ntrip"]["shared_credentials"] == {"user": "demo", "password": "demo"}
