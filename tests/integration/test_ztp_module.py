"""Integration tests of gnss.pointperfect.ztp: real ansible-playbook runs on localhost against the ZTP simulator."""

import hashlib
import json
import os
import shutil
import stat
import time

import pytest
from ztp_helpers import device_calls

DAY = 86400


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def tree_hash(dest):
    """sha256 of every file in dest (missing dest = empty), to prove nothing changed on disk."""
    if not os.path.isdir(dest):
        return {}
    out = {}
    for name in sorted(os.listdir(dest)):
        with open(os.path.join(dest, name), "rb") as f:
            out[name] = (hashlib.sha256(f.read()).hexdigest(), mode_of(os.path.join(dest, name)))
    return out


def secrets_in(dest):
    """Every secret the module wrote: private key body, NTRIP password, dynamic key values."""
    found = []
    key = os.path.join(dest, "client.key")
    if os.path.exists(key):
        with open(key) as f:
            found += [line for line in f.read().splitlines() if line and not line.startswith("-----")]
    with open(os.path.join(dest, "credentials.json")) as f:
        creds = json.load(f)
    if creds.get("ntrip"):
        found.append(creds["ntrip"]["password"])
    for k in (creds.get("dynamickeys") or {}).values():
        found.append(k["value"])
    return found


def assert_clean(run, sim, extra=()):
    """No token, key line, password or dynamic key in the -vvv output or the registered results."""
    text = run.output + json.dumps(run.results)
    for token in sim.tokens.values():
        assert token not in text
    for secret in extra:
        assert secret not in text, "secret leaked"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("dests")


def assert_first_real_run(real, base):
    """What the first real run of the three plans returned and wrote."""
    mqtt, ntrip, lband = real["mqtt"], real["ntrip"], real["lband"]
    assert (mqtt["changed"], mqtt["api_called"], mqtt["reason"]) == (True, True, "missing")
    assert (mqtt["plan"], mqtt["service"], mqtt["broker_host"], mqtt["broker_port"]) == (
        "ip",
        "mqtt",
        "127.0.0.1",
        8883,
    )
    assert (mqtt["regions"], mqtt["region"]) == (["eu"], "auto")
    assert mqtt["topics"] == {
        "keys": "/pp/ubx/0236/ip",
        "corrections": {"eu": "/pp/ip/eu"},
        "assistnow": "/pp/ubx/mga",
        "frequencies": None,
    }
    assert mqtt["ntrip"] is None
    assert 360 <= mqtt["days_remaining"] <= 365
    assert mqtt["client_id"] and mqtt["certificate_not_after"].endswith("Z")
    d = base / "four-mqtt"
    assert sorted(mqtt["files"]) == [str(d / n) for n in ("client.crt", "client.key", "credentials.json")]
    assert (mode_of(d / "client.crt"), mode_of(d / "client.key"), mode_of(d / "credentials.json")) == (
        0o644,
        0o600,
        0o600,
    )
    creds = json.loads((d / "credentials.json").read_text())
    assert (creds["format"], creds["hardware_id"], creds["client_id"]) == (1, "four-mqtt", mqtt["client_id"])
    assert creds["mqtt"]["certificate"] == str(d / "client.crt")
    assert (creds["regions"], creds["topics"]["corrections"]) == (["eu"], {"eu": "/pp/ip/eu"})
    assert (ntrip["plan"], ntrip["service"], ntrip["client_id"], ntrip["certificate_not_after"]) == (
        "ntrip",
        "ntrip",
        None,
        None,
    )
    # not u-blox's caster: no TLS port is known (the user sets it on the forwarder)
    assert ntrip["ntrip"] == {"host": "127.0.0.1", "port": 2101, "mountpoint": "NEAR-SPARTN", "tls": None}
    ntrip_creds = json.loads((base / "four-ntrip" / "credentials.json").read_text())
    assert (ntrip_creds["ntrip"]["port"], ntrip_creds["ntrip"]["tls_port"]) == (2101, None)  # httpPort a string
    assert sorted(os.listdir(base / "four-ntrip")) == ["credentials.json"]
    assert mode_of(base / "four-ntrip" / "credentials.json") == 0o640
    assert (lband["plan"], lband["regions"], lband["topics"]["keys"]) == ("ip+lband", ["us"], "/pp/ubx/0236/Lb")
    assert lband["topics"]["corrections"] == {"us": "/pp/Lb/us"}
    assert lband["topics"]["frequencies"] == "/pp/frequencies/Lb"


def test_four_steps_both_plans(sim, playbook, base):
    """check -> real -> idempotent check -> idempotent real, for an MQTT and an NTRIP plan."""
    cases = [
        {"name": "mqtt", "profile": "ip", "hardware_id": "four-mqtt", "dest": str(base / "four-mqtt")},
        {
            "name": "ntrip",
            "profile": "ntrip",
            "hardware_id": "four-ntrip",
            "dest": str(base / "four-ntrip"),
            "mode": "0640",
        },
        {"name": "lband", "profile": "ip+lband", "hardware_id": "four-lband", "dest": str(base / "four-lband")},
    ]
    calls = lambda: [device_calls(sim, c["profile"], c["hardware_id"]) for c in cases]  # noqa: E731

    check = playbook(cases, check=True, diff=True)
    assert check.rc == 0, check.output[-3000:]
    for c in cases:
        r = check[c["name"]]
        assert (r["changed"], r["api_called"], r["reason"]) == (True, False, "missing")
        assert "would call the ZTP API" in r["msg"]
        assert not os.path.exists(c["dest"])
    assert calls() == [0, 0, 0]

    real = playbook(cases, diff=True)
    assert real.rc == 0, real.output[-3000:]
    assert calls() == [1, 1, 1]
    assert_first_real_run(real, base)
    # diff mode shows public facts only
    assert "fingerprint_sha256:" in real.output and "endpoint: mqtts://127.0.0.1:8883" in real.output
    assert_clean(real, sim, secrets_in(base / "four-mqtt") + secrets_in(base / "four-ntrip"))
    hashes = {c["name"]: tree_hash(c["dest"]) for c in cases}

    for check_mode in (True, False):
        again = playbook(cases, check=check_mode, diff=True)
        assert again.rc == 0
        for c in cases:
            r = again[c["name"]]
            assert (r["changed"], r["api_called"], r["reason"]) == (False, False, "valid"), r
            assert r["plan"] == real[c["name"]]["plan"]
            assert r["client_id"] == real[c["name"]]["client_id"]
            assert r["ntrip"] == real[c["name"]]["ntrip"]
            assert r["topics"] == real[c["name"]]["topics"]
            assert r["certificate_not_after"] == real[c["name"]]["certificate_not_after"]
            assert tree_hash(c["dest"]) == hashes[c["name"]]
        assert calls() == [1, 1, 1], "a no-op run must make zero API calls"
        assert "changed=0" in again.output


def test_renewal_reasons(sim, playbook, base):
    """expiring certificate, hardware id change, force, stale NTRIP credentials (identical and rotated)."""
    client = sim.client()

    def case(name, profile, hwid, **kw):
        return {"name": name, "profile": profile, "hardware_id": hwid, "dest": str(base / name), **kw}

    setup = [
        case("exp", "ip2", "ren-exp"),
        case("hw", "ip2", "ren-hw"),
        case("stale", "ntrip", "ren-stale"),
        case("rot", "ntrip", "ren-rot"),
    ]
    first = playbook(setup, verbose=False)
    assert first.rc == 0 and all(first[c["name"]]["changed"] for c in setup)

    client.expire(sim.tokens["ip2"], "ren-exp", 5)  # the service now hands out a certificate with 5 days left
    old = time.time() - 10 * DAY
    for name in ("stale", "rot"):
        os.utime(base / name / "credentials.json", (old, old))
    client.rotate(sim.tokens["ntrip"], "ren-rot")
    stale_hash = tree_hash(base / "stale")
    exp_hash = tree_hash(base / "exp")

    second = playbook(
        [
            case("exp", "ip2", "ren-exp", force=True),
            case("hw", "ip2", "ren-hw-2"),
            case("stale", "ntrip", "ren-stale"),
            case("rot", "ntrip", "ren-rot"),
        ],
        diff=True,
    )
    assert second.rc == 0, second.output[-3000:]
    r = second["exp"]
    assert (r["reason"], r["api_called"], r["changed"]) == ("forced", True, True)
    assert r["days_remaining"] <= 5
    assert tree_hash(base / "exp") != exp_hash
    r = second["hw"]
    assert (r["reason"], r["api_called"], r["changed"]) == ("hardware_id_changed", True, True)
    assert json.loads((base / "hw" / "credentials.json").read_text())["hardware_id"] == "ren-hw-2"
    assert r["client_id"] != first["hw"]["client_id"]
    r = second["stale"]
    assert (r["reason"], r["api_called"], r["changed"]) == ("stale", True, False)
    assert tree_hash(base / "stale") == stale_hash  # identical credentials: bytes untouched ...
    assert os.stat(base / "stale" / "credentials.json").st_mtime > time.time() - 600  # ... confirmation recorded
    r = second["rot"]
    assert (r["reason"], r["api_called"], r["changed"]) == ("stale", True, True)
    assert device_calls(sim, "ip2", "ren-exp") == 2
    assert device_calls(sim, "ntrip", "ren-stale") == 2

    client.expire(sim.tokens["ip2"], "ren-exp", 200)
    third = playbook([case("exp", "ip2", "ren-exp"), case("stale", "ntrip", "ren-stale")])
    r = third["exp"]
    assert (r["reason"], r["api_called"], r["changed"]) == ("expiring", True, True)
    assert 195 <= r["days_remaining"] <= 200
    r = third["stale"]
    assert (r["reason"], r["api_called"], r["changed"]) == ("valid", False, False)
    assert device_calls(sim, "ip2", "ren-exp") == 3
    assert device_calls(sim, "ntrip", "ren-stale") == 2
    assert_clean(second, sim, secrets_in(base / "rot") + secrets_in(base / "exp"))


def test_retry_after_rate_limit_then_success(sim, playbook, base):
    run = playbook(
        [{"name": "flaky", "profile": "flaky", "hardware_id": "flaky-1", "dest": str(base / "flaky"), "retries": 3}],
        verbose=False,
    )
    r = run["flaky"]
    assert (r["changed"], r["api_called"], r.get("failed", False)) == (True, True, False), r
    assert device_calls(sim, "flaky", "flaky-1") == 3


def test_mode_drift_is_fixed_without_api_call(sim, playbook, base):
    dest = base / "drift"
    c = {"name": "drift", "profile": "ip", "hardware_id": "drift-1", "dest": str(dest)}
    playbook([c], verbose=False)
    os.chmod(dest / "client.key", 0o644)
    before = device_calls(sim, "ip", "drift-1")
    check = playbook([c], check=True, verbose=False)["drift"]
    assert (check["changed"], check["api_called"], check["reason"]) == (True, False, "valid")
    assert mode_of(dest / "client.key") == 0o644
    fixed = playbook([c], verbose=False)["drift"]
    assert (fixed["changed"], fixed["api_called"], fixed["reason"]) == (True, False, "valid")
    assert mode_of(dest / "client.key") == 0o600
    assert device_calls(sim, "ip", "drift-1") == before


ERRORS = [
    # (case name, profile or None, extra case keys, expected message fragment)
    ("already_registered", "already_registered", {}, "already registered on another device profile"),
    ("no_plan", "no_plan", {}, "no plan for device; assign a PointPerfect plan"),
    ("not_whitelisted", "not_whitelisted", {}, "hardware code not whitelisted; allow it"),
    ("bad_token", "bad_token", {}, "ZTP rejected the token (HTTP 401: Invalid token)"),
    (
        "long_name",
        "ip",
        {"given_name": "n" * 200},
        "ZTP API refused the request for hardware id 'err-long_name' (HTTP 400: Bad Request: hardwareId and "
        "givenName are limited to 128 characters); check hardware_id, given_name and tags",
    ),
    ("rate_limit", "rate_limit", {}, "rate limit (HTTP 429: "),
    ("server_error", "server_error", {}, "ZTP API unavailable (HTTP 500) after 1 retries"),
    ("unavailable", "unavailable", {}, "ZTP API unavailable (HTTP 503) after 1 retries"),
    ("malformed", "malformed", {}, "ZTP API returned malformed JSON"),
    ("timeout", "timeout", {"timeout": 1}, "did not answer within timeout=1 s (after 1 retries)"),
    (
        "not_activated",
        "not_activated",
        {"activation_timeout": 3},
        "the device is not activated yet (ZTP returned no credentials 3 times within activation_timeout=3 s)",
    ),
    (
        "connection",
        "ip",
        {"api_url": "https://127.0.0.1:9/ztp/pointperfect/credentials"},
        "cannot connect to the ZTP API",
    ),
    ("tls", "ip", {"ca_path": None}, "TLS verification of the ZTP API failed"),
    ("no_token", None, {}, "no ZTP token: set the token option or the POINTPERFECT_ZTP_TOKEN"),
    ("bad_owner", "ip", {"owner": "no-such-user-pp"}, "user 'no-such-user-pp' does not exist on the target"),
]


def test_every_error_leaves_files_untouched(sim, playbook, base, tmp_path):
    """Each error: a one-line message saying what to do, previous files byte-for-byte unchanged, no secret."""
    seed = base / "err-seed"
    first = playbook([{"name": "seed", "profile": "ip", "hardware_id": "err-seed", "dest": str(seed)}], verbose=False)
    assert first["seed"]["changed"]
    wrong_ca = tmp_path / "wrong-ca.pem"
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", wrong_ca) if os.path.exists(
        "/etc/ssl/certs/ca-certificates.crt"
    ) else wrong_ca.write_text("")
    cases = []
    for name, profile, extra, _ in ERRORS:
        dest = base / f"err-{name}"
        shutil.copytree(seed, dest)
        c = {"name": name, "hardware_id": f"err-{name}", "dest": str(dest), "force": True, **extra}
        if profile:
            c["profile"] = profile
        if extra.get("ca_path", "") is None:
            c["ca_path"] = str(wrong_ca)
        cases.append(c)
    before = {c["name"]: tree_hash(c["dest"]) for c in cases}
    calls_before = sim.calls()["total"]
    run = playbook(cases)
    for name, _, _, message in ERRORS:
        r = run[name]
        assert r.get("failed") is True, (name, r)
        assert message in r["msg"], (name, r["msg"])
        assert "\n" not in r["msg"] and "Traceback" not in r["msg"]
        assert tree_hash(base / f"err-{name}") == before[name], name
    assert "Traceback" not in run.output
    assert_clean(run, sim, secrets_in(seed))
    assert sim.calls()["total"] > calls_before


LOCAL_ERRORS = [
    # (case name, extra case keys, expected message): refused before any API call
    ("hwid_empty", {"hardware_id": ""}, "hardware_id is empty: set it to the device's unique id"),
    ("hwid_long", {"hardware_id": "x" * 300}, "hardware_id is 300 characters long: use at most 64"),
    ("hwid_chars", {"hardware_id": "gw 01/x"}, "hardware_id 'gw 01/x' contains ' ', '/': use only letters"),
    ("token_form", {"token": "not-a-token"}, "the ZTP token is not a device-profile token (11 characters"),
    ("token_upper", {"token_variant": "upper"}, "the ZTP token has upper-case letters: write it in lower case"),
    ("token_space", {"token_variant": "space"}, "the ZTP token has leading or trailing whitespace"),
    ("ca_missing", {"ca_path": "/nonexistent/pp-ca.pem"}, "ca_path /nonexistent/pp-ca.pem does not exist on the"),
]


def test_local_checks_refuse_before_any_call(sim, playbook, base):
    """Bad hardware ids, malformed tokens and a missing ca_path: a one-line message naming the option, and no call."""
    cases = []
    for name, extra, _ in LOCAL_ERRORS:
        cases.append(
            {"name": name, "profile": "ip", "hardware_id": f"loc-{name}", "dest": str(base / f"loc-{name}"), **extra}
        )
    calls_before = sim.calls()["total"]
    for check in (False, True):
        run = playbook(cases, check=check)
        for name, _, message in LOCAL_ERRORS:
            r = run[name]
            assert r.get("failed") is True and not r.get("api_called"), r
            assert message in r["msg"], (name, r["msg"])
            assert "\n" not in r["msg"]
            assert not os.path.exists(base / f"loc-{name}")
        assert_clean(run, sim, [sim.tokens["ip"].upper()])
        assert sim.calls()["total"] == calls_before


def test_token_from_environment(sim, playbook, base):
    c = {"name": "env", "hardware_id": "env-1", "dest": str(base / "env")}
    run = playbook([c], env={"POINTPERFECT_ZTP_TOKEN": sim.tokens["ip"]})
    r = run["env"]
    assert (r["changed"], r["api_called"]) == (True, True), r
    assert device_calls(sim, "ip", "env-1") == 1
    assert r["invocation"]["module_args"]["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert_clean(run, sim, secrets_in(base / "env"))


def test_live_both_secrets_never_shown(sim, playbook, base):
    """An MQTT plan answer that also carries NTRIP credentials: plan ip, service ntrip, nothing secret in -vvv."""
    dest = base / "both"
    run = playbook([{"name": "both", "profile": "live_both", "hardware_id": "both-1", "dest": str(dest)}], diff=True)
    r = run["both"]
    assert (r["plan"], r["service"], r["ntrip"]["tls"]) == ("ip", "ntrip", 2102)  # u-blox's caster on 2101
    secrets = secrets_in(dest)
    assert len(secrets) > 10
    assert_clean(run, sim, secrets)


def test_activation_wait_is_transparent(sim, playbook, base):
    """A device "not activated" on its first calls (RTK-E: the usual answer to a first call) is asked again in the
    same run; with the simulator's defaults too (every region of the plan, whatever its first-call behaviour)."""
    cases = [
        {"name": "pending", "profile": "pending", "hardware_id": "pend-1", "dest": str(base / "pending")},
        {"name": "default", "profile": "default", "hardware_id": "dflt-1", "dest": str(base / "default")},
    ]
    run = playbook(cases, verbose=False)
    assert run.rc == 0, run.output[-3000:]
    r = run["pending"]
    assert (r["changed"], r["api_called"], r["reason"]) == (True, True, "missing"), r
    assert "the device was activated after 6 s" in r["msg"]
    assert device_calls(sim, "pending", "pend-1") == 3  # two "not activated" answers, 2 s and 4 s apart
    r = run["default"]
    assert (r["changed"], r["api_called"], r.get("failed", False)) == (True, True, False), r
    assert r["regions"] and set(r["topics"]["corrections"]) == set(r["regions"])
    assert all(t == "/pp/ip/" + g for g, t in r["topics"]["corrections"].items())
    calls = [device_calls(sim, c["profile"], c["hardware_id"]) for c in cases]
    again = playbook(cases, verbose=False)
    for c in cases:
        assert (again[c["name"]]["changed"], again[c["name"]]["api_called"]) == (False, False)
    assert [device_calls(sim, c["profile"], c["hardware_id"]) for c in cases] == calls


def test_region_option(sim, playbook, base):
    """An explicit region must be in the plan: checked on the API answer before writing, and against the deployed
    credentials.json without a call; a region of the plan (any spelling) is accepted and returned."""
    dest = str(base / "region")
    case = {"name": "r", "profile": "multi", "hardware_id": "region-1", "dest": dest}
    wrong = playbook([dict(case, region="kr")], verbose=False)["r"]
    assert wrong["failed"] and wrong["api_called"] and not wrong["changed"], wrong
    assert wrong["msg"] == "region 'kr' is not in this plan (eu, us): set region to one of them or auto"
    assert not os.path.exists(dest)
    ok = playbook([dict(case, region="US")], verbose=False)["r"]
    assert (ok["changed"], ok["region"], ok["regions"]) == (True, "us", ["eu", "us"]), ok
    assert ok["topics"]["corrections"] == {"eu": "/pp/ip/eu", "us": "/pp/ip/us"}
    written = tree_hash(dest)
    calls = device_calls(sim, "multi", "region-1")
    for check in (True, False):
        again = playbook([dict(case, region="kr")], check=check, verbose=False)["r"]
        assert again["failed"] and not again["api_called"] and not again["changed"], again
        assert "region 'kr' is not in this plan (eu, us)" in again["msg"]
    assert device_calls(sim, "multi", "region-1") == calls
    assert tree_hash(dest) == written
