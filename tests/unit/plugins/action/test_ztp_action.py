"""Unit tests of the ztp action plugin's flow with the module part run in-process and a fake API: renewal over a
whole key period, the region option, old-form credentials.json."""

import json
import os
import time
import types

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.gnss.pointperfect.plugins.action import ztp as action
from ansible_collections.gnss.pointperfect.plugins.module_utils import _atomic
from ansible_collections.gnss.pointperfect.plugins.modules import ztp as module
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _ztp_response as resp
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_response import ZtpError

from tests.unit.ztp_samples import KEY_PERIOD_MS, key_grid, mqtt_body, ntrip_body, rtke_ip_body, xplr_body

DAY = 86400
TOKEN = "8f6b2f0c-1c1e-4d0a-9a51-0000000000aa"


class FakeApi:
    """Stands in for ZtpClient: answers body(now) and records every call."""

    def __init__(self, body):
        self.body = body
        self.calls = []
        self.now = None

    def client(self, **kwargs):
        api = self

        class Client:
            activation_waited = 0

            def check_request(self, token, hardware_id):
                pass

            def fetch(self, token, hardware_id, given_name=None, tags=None):
                api.calls.append(api.now)
                return resp.parse_credentials(api.body(api.now))

        return Client()


class Action(action.ActionModule):
    """The action plugin with the module part called in-process on a local dest, at a simulated time."""

    def __init__(self, api, check_mode=False):  # no ActionBase plumbing: _provision is driven directly
        self._task = types.SimpleNamespace(check_mode=check_mode, diff=True)
        self.api = api

    def _run_part(self, task_vars, args):
        dest, mode = args["dest"], _atomic.parse_mode(args["mode"])
        if args["_state"] == "read":
            state = module.read_state(dest, mode, None, None)
            state["now"] = self.api.now
            return {"state": state}
        if self._task.check_mode:
            return {"changed": False, "files": module.managed_files(dest)}
        if args["_state"] == "attributes":
            return {"changed": module.fix_attributes(dest, mode, None, None)}
        contents = {module.CERT: args.get("_certificate"), module.KEY: args.get("_private_key")}
        contents[module.CREDS] = args["_credentials"]
        contents = {k: None if v is None else v.encode() for k, v in contents.items()}
        changed = module.write_files(dest, contents, mode, None, None, remove=args.get("_remove") or [])
        creds = os.path.join(dest, module.CREDS)
        os.utime(creds, (self.api.now, self.api.now))  # the confirmation time, in simulated time
        return {"changed": changed, "files": module.managed_files(dest)}


@pytest.fixture
def run(monkeypatch):
    """run(api, dest, now, check=False, **options) -> the task result."""

    def _run(api, dest, now, check=False, **options):
        monkeypatch.setattr(action, "ZtpClient", api.client)
        api.now = now
        params = dict({"token": TOKEN, "hardware_id": "gw-01", "dest": str(dest)}, **options)
        result = ArgumentSpecValidator(action.ARGUMENT_SPEC).validate(params)
        assert not result.error_messages, result.error_messages
        args = result.validated_parameters
        args["region"] = action.region_option(args["region"])
        return Action(api, check_mode=check)._provision(args, {}, set())

    return _run


def snapshot(dest):
    return {n: (dest / n).read_bytes() for n in sorted(os.listdir(dest))} if dest.exists() else {}


def sweep_points(start_s, period_s, steps=56):
    """Times across one key period: its first and last millisecond and every period/steps between."""
    return [start_s + period_s * i / steps for i in range(steps)] + [start_s + period_s - 0.001]


@pytest.mark.parametrize("service", ["mqtt", "ntrip"])
def test_second_run_never_calls_the_api_across_a_whole_key_period(tmp_path, pki, run, service):
    """Whenever in the 28-day key period the first call happens, runs seconds, minutes and a day later make no call
    and check mode predicts no change (keys arrive live on MQTT; NTRIP keys renew with the weekly refresh)."""

    def body(now):
        keys = key_grid(int(now * 1000))
        return mqtt_body(pki, dynamickeys=keys) if service == "mqtt" else ntrip_body(dynamickeys=keys)

    # the period containing today, so the test certificate (valid 365 days from now) stays valid throughout
    start_ms = key_grid(int(time.time() * 1000))["current"]["start"]
    for i, first in enumerate(sweep_points(start_ms / 1000.0, KEY_PERIOD_MS / 1000.0)):
        api = FakeApi(body)
        dest = tmp_path / f"{service}-{i:03d}"
        r = run(api, dest, first)
        assert (r["api_called"], r["changed"], r["reason"]) == (True, True, "missing"), r
        written = snapshot(dest)
        for later in (5, 300, DAY):
            check = run(api, dest, first + later, check=True)
            outcome = (check["api_called"], check["changed"], check["reason"])
            assert outcome == (False, False, "valid"), (i, later, check["msg"])
            again = run(api, dest, first + later)
            outcome = (again["api_called"], again["changed"], again["reason"])
            assert outcome == (False, False, "valid"), (i, later, again["msg"])
        assert api.calls == [first]
        assert snapshot(dest) == written


def test_ntrip_keys_in_their_last_week_are_renewed(tmp_path, run):
    """The weekly NTRIP refresh normally renews keys; keys within 7 days of their end still trigger a call."""
    now = 1_800_000_000.0
    end = int((now + 6 * DAY) * 1000)
    keys = {"current": {"start": end - 2419199999, "duration": 2419199999, "value": "ab" * 16}}
    api = FakeApi(lambda t: ntrip_body(dynamickeys=keys))
    run(api, tmp_path / "d", now - 2 * DAY)
    r = run(api, tmp_path / "d", now, check=True)
    assert (r["reason"], r["changed"], r["api_called"]) == ("expiring", True, False)


@pytest.mark.parametrize(("body", "region"), [(xplr_body, "Japan"), (rtke_ip_body, "kr"), (rtke_ip_body, "auto")])
def test_region_in_the_plan_is_accepted(tmp_path, pki, run, body, region):
    api = FakeApi(lambda now: body(pki))
    r = run(api, tmp_path / "d", 1_800_000_000.0, region=region)
    assert r["changed"] and not r.get("failed"), r
    assert r["region"] == {"Japan": "jp"}.get(region, region)
    assert r["regions"] == (["au", "eu", "jp", "us"] if body is xplr_body else ["au", "eu", "jp", "kr", "us"])
    assert set(r["topics"]["corrections"]) == set(r["regions"])
    again = run(api, tmp_path / "d", 1_800_000_100.0, region=region)
    assert (again["api_called"], again["changed"], again.get("failed", False)) == (False, False, False)


def test_region_not_in_the_plan_fails_before_writing(tmp_path, pki, run):
    subs = [{"path": "/pp/ubx/0236/ip;/pp/ip/eu;/pp/ip/us"}]
    api = FakeApi(lambda now: mqtt_body(pki, subscriptions=subs))
    dest = tmp_path / "d"
    r = run(api, dest, 1_800_000_000.0, region="kr")
    assert r["failed"] and r["api_called"] and not r["changed"]
    assert r["msg"] == "region 'kr' is not in this plan (eu, us): set region to one of them or auto"
    assert snapshot(dest) == {}


def test_region_checked_against_deployed_credentials_without_a_call(tmp_path, pki, run):
    api = FakeApi(lambda now: rtke_ip_body(pki))
    dest = tmp_path / "d"
    run(api, dest, 1_800_000_000.0)
    for check in (True, False):
        assert not run(api, dest, 1_800_000_100.0, check=check, region="jp").get("failed")
    # a credentials.json listing only eu and us (e.g. written for another plan)
    creds = json.loads((dest / "credentials.json").read_text())
    creds["regions"] = ["eu", "us"]
    (dest / "credentials.json").write_text(json.dumps(creds))
    deployed = snapshot(dest)
    for check in (True, False):
        r = run(api, dest, 1_800_000_200.0, check=check, region="jp")
        assert r["failed"] and not r["api_called"] and not r["changed"]
        assert r["msg"] == "region 'jp' is not in this plan (eu, us): set region to one of them or auto"
    assert len(api.calls) == 1 and snapshot(dest) == deployed


@pytest.mark.parametrize("body", [ntrip_body, "lband"])
def test_region_not_checked_for_plans_without_correction_regions(tmp_path, pki, run, body):
    lband = [{"path": "/pp/ubx/0236/Lb;/pp/frequencies/Lb"}]
    if body == "lband":
        body = lambda: mqtt_body(pki, supportsMqtt=False, supportsLband=True, subscriptions=lband)  # noqa: E731
    r = run(FakeApi(lambda now: body()), tmp_path / "d", 1_800_000_000.0, region="us")
    assert r["changed"] and not r.get("failed") and r["regions"] == [] and r["region"] == "us"


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("AUTO", "auto"), ("EU", "eu"), ("Japan", "jp")])
def test_region_option(value, expected):
    assert action.region_option(value) == expected


@pytest.mark.parametrize("value", ["eu west", "e", "4u", "/pp/ip/eu"])
def test_region_option_rejects_what_is_no_region(value):
    with pytest.raises(ZtpError, match="is not a region code: set region to auto or a code"):
        action.region_option(value)


def test_old_form_credentials_are_read(tmp_path, pki, run):
    """A credentials.json written before Contract 1 (corrections as a list) is reported in the new shape."""
    api = FakeApi(lambda now: mqtt_body(pki))
    dest = tmp_path / "d"
    run(api, dest, 1_800_000_000.0)
    creds = json.loads((dest / "credentials.json").read_text())
    creds["topics"] = {"keys": "/pp/ubx/0236/ip", "corrections": ["/pp/ip/eu"], "assistnow": "/pp/ubx/mga"}
    (dest / "credentials.json").write_text(json.dumps(creds))
    r = run(api, dest, 1_800_000_100.0, region="eu")
    assert (r["api_called"], r.get("failed", False)) == (False, False)
    assert r["topics"] == {
        "keys": "/pp/ubx/0236/ip",
        "corrections": {"eu": "/pp/ip/eu"},
        "assistnow": "/pp/ubx/mga",
        "frequencies": None,
    }


def test_check_mode_on_a_fresh_host_returns_every_promised_value(tmp_path, pki, run):
    """RETURN promises plan, service, days_remaining... on success: check mode on a fresh host returns them all,
    null (or empty) while unknown, and no API call is made."""
    import yaml  # noqa: PLC0415 - only this test reads the documentation

    api = FakeApi(lambda now: mqtt_body(pki))
    r = run(api, tmp_path / "fresh", 1_800_000_000.0, check=True)
    assert (r["changed"], r["api_called"], r["reason"]) == (True, False, "missing")
    promised = set(yaml.safe_load(module.RETURN))
    assert promised <= set(r), promised - set(r)
    assert (r["plan"], r["service"], r["days_remaining"], r["client_id"], r["ntrip"]) == (None,) * 5
    assert r["regions"] == [] and r["topics"]["corrections"] == {}
    assert api.calls == []


PEM_SECRET = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(["A1b2C3d4" * 8] * 6) + "\n-----END RSA PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    "secret",
    [PEM_SECRET, "p1", "x", "abc", TOKEN, "0123456789abcdef0123456789abcdef"],
)
def test_redact_before_truncating_and_short_secrets(secret):
    text = "boom at the start " + "x" * 150 + " " + secret + " and \x1b[31mred\x1b[0m after"
    out = action.redact(text, {secret}, 200)
    assert "\n" not in out and "\x1b" not in out and len(out) <= 200
    if len(secret) >= 4:
        assert secret not in out
        for line in secret.splitlines():
            if len(line) >= 16 and "-----" not in line:
                assert line not in out
    assert " ".join(secret.split())[:40] not in out or len(secret) < 4
    assert action.redact(f"pw={secret};", {secret}) == "pw=********;"


class _Runner(action.ActionModule):
    """run() without ActionBase plumbing; _provision raises what the test wants."""

    def __init__(self, provision):
        self._provision_impl = provision
        self._connection = types.SimpleNamespace(_shell=types.SimpleNamespace(tmpdir=None))
        self._task = types.SimpleNamespace(check_mode=False, diff=False)

    def validate_argument_spec(self, argument_spec=None):
        params = {"token": TOKEN, "hardware_id": "gw-01", "dest": "/tmp/x"}
        return None, ArgumentSpecValidator(argument_spec).validate(params).validated_parameters

    def _remove_tmp_path(self, path):
        pass

    def _provision(self, args, task_vars, secrets):
        return self._provision_impl(secrets)


def _run(provision, monkeypatch):
    monkeypatch.setattr(action.ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    return _Runner(provision).run(task_vars={})


@pytest.mark.parametrize("secret", [PEM_SECRET, "pw", "abc"])
def test_unexpected_error_with_a_multi_line_or_short_secret_is_redacted(monkeypatch, secret):
    def provision(secrets):
        secrets.add(secret)
        raise RuntimeError("x" * 120 + " " + secret + " tail")

    result = _run(provision, monkeypatch)
    assert result["failed"] is True and "\n" not in result["msg"]
    dumped = json.dumps(result)
    for line in secret.splitlines():
        if "-----" not in line:
            assert line[:20] not in dumped.replace("x" * 120, "")  # not even the start of a cut line
    assert TOKEN not in dumped


def test_error_message_with_ansi_and_secret_from_a_part(monkeypatch):
    def provision(secrets):
        secrets.add("s3")
        return {"failed": True, "msg": "bad \x1b[2J\x1b[31m value s3\r\nnext"}

    result = _run(provision, monkeypatch)
    assert "\x1b" not in result["msg"] and "\n" not in result["msg"] and "\r" not in result["msg"]
    assert "s3" not in result["msg"]


def test_client_key_symlink_outside_dest_stays_0600_after_runs(tmp_path, run):
    """NTRIP-only deployment: a client.key symlink to a 0600 file elsewhere is never chmod-ed through."""
    target = tmp_path / "elsewhere.key"
    target.write_text("not ours\n")
    os.chmod(target, 0o600)
    api = FakeApi(lambda now: ntrip_body(dynamickeys=key_grid(int(now * 1000))))
    dest = tmp_path / "pp"
    now = time.time()
    assert run(api, dest, now, mode="0640")["changed"] is True
    (dest / "client.key").symlink_to(target)
    for later in (60, 120):
        r = run(api, dest, now + later, mode="0640")
        assert not r.get("failed"), r
    assert os.stat(target).st_mode & 0o7777 == 0o600


class Counting(Action):
    """Counts the module part's runs (each one SSH round trip on a real gateway)."""

    def __init__(self, api, check_mode=False):
        super().__init__(api, check_mode)
        self.parts = []

    def _run_part(self, task_vars, args):
        self.parts.append(args["_state"])
        return super()._run_part(task_vars, args)


def probed(dest, now, **wanted):
    """What gateway_probe's credentials option returns for dest (the role passes it as _probed_state)."""
    from ansible_collections.gnss.pointperfect.plugins.modules import gateway_probe  # noqa: PLC0415

    state = gateway_probe.credentials(dict({"dest": str(dest), "owner": None, "group": None, "mode": "0600"}, **wanted))
    state["now"] = now
    return state


@pytest.fixture
def provision(monkeypatch):
    """provision(api, dest, now, probed_state, check=False) -> (the task result, the module part's runs)."""

    def _provision(api, dest, now, probed_state, check=False, **options):
        monkeypatch.setattr(action, "ZtpClient", api.client)
        api.now = now
        params = dict(
            {"token": TOKEN, "hardware_id": "gw-01", "dest": str(dest), "_probed_state": probed_state}, **options
        )
        result = ArgumentSpecValidator(dict(action.ARGUMENT_SPEC, **action.PRIVATE_SPEC)).validate(params)
        assert not result.error_messages, result.error_messages
        args = result.validated_parameters
        args["region"] = action.region_option(args["region"])
        runner = Counting(api, check_mode=check)
        return runner._provision(args, {}, set(), args.pop("_probed_state")), runner.parts

    return _provision


@pytest.mark.parametrize("check", [False, True])
def test_probed_state_replaces_the_read(tmp_path, pki, run, provision, check):
    """With the probe's state of the same dest, owner, group and mode the action reads nothing: a no-op costs no
    round trip, with the same result as its own read."""
    api = FakeApi(lambda now: mqtt_body(pki))
    dest = tmp_path / "d"
    run(api, dest, 1_800_000_000.0)
    own = run(api, dest, 1_800_000_100.0, check=check)
    got, parts = provision(api, dest, 1_800_000_100.0, probed(dest, 1_800_000_100.0), check=check)
    assert parts == []
    assert got == own and (got["api_called"], got["changed"], got["reason"]) == (False, False, "valid")


@pytest.mark.parametrize(
    "spoil",
    [
        lambda s: dict(s, ids_known=False),  # the group did not exist when probed (a fresh gateway)
        lambda s: dict(s, read_for=dict(s["read_for"], mode="0640")),  # read for another mode
        lambda s: dict(s, read_for=dict(s["read_for"], dest="/elsewhere"), dest="/elsewhere"),
        lambda s: dict(s, read_for=dict(s["read_for"], group="other")),
        lambda s: {k: v for k, v in s.items() if k != "certificate_pem"},  # incomplete
        lambda s: dict(s, files=None),
        lambda s: dict(s, files={}),
    ],
)
def test_probed_state_for_something_else_is_read_again(tmp_path, pki, run, provision, spoil):
    api = FakeApi(lambda now: mqtt_body(pki))
    dest = tmp_path / "d"
    run(api, dest, 1_800_000_000.0)
    got, parts = provision(api, dest, 1_800_000_100.0, spoil(probed(dest, 1_800_000_100.0)))
    assert parts == ["read"]
    assert (got["api_called"], got["changed"], got["reason"]) == (False, False, "valid")


@pytest.mark.parametrize("ids_known", [True, False])
def test_probed_state_of_a_fresh_host_still_provisions(tmp_path, pki, provision, ids_known):
    """A fresh gateway: nothing deployed, so the decision is missing whether or not the group existed when probed
    (it is created between the probe and the ztp task): no read of its own, one round trip (the write)."""
    api = FakeApi(lambda now: mqtt_body(pki))
    dest = tmp_path / "fresh"
    got, parts = provision(api, dest, 1_800_000_000.0, dict(probed(dest, 1_800_000_000.0), ids_known=ids_known))
    assert parts == ["write"] and (got["api_called"], got["changed"], got["reason"]) == (True, True, "missing")


# What the gateway role's no-op decision reads (the ztp_deployed filter) against what the action does with the same
# probed state and options: `current` exactly when the action calls no API, changes nothing and does not fail.
DEPLOYED_CASES = {
    "valid": ({}, None),
    "expiring": ({"renew_before_days": 100000}, None),
    "forced": ({"force": True}, None),
    "region not in the plan": ({"region": "kr"}, None),
    "region in the plan": ({"region": "EU"}, None),
    "another hardware id": ({"hardware_id": "gw-02"}, None),
    "a key file's mode": ({}, lambda dest: os.chmod(dest / "client.key", 0o644)),
    "no credentials": ({}, lambda dest: os.remove(dest / "credentials.json")),
    "ntrip stale": ({"refresh_after_days": 0}, "ntrip"),
}


@pytest.mark.parametrize("case", list(DEPLOYED_CASES))
def test_ztp_deployed_filter_agrees_with_the_action(tmp_path, pki, run, provision, case):
    from ansible_collections.gnss.pointperfect.plugins.filter.ztp_deployed import ztp_deployed  # noqa: PLC0415

    options, spoil = DEPLOYED_CASES[case]
    ntrip = spoil == "ntrip"
    api = FakeApi(lambda now: ntrip_body() if ntrip else mqtt_body(pki))
    dest = tmp_path / "d"
    run(api, dest, 1_800_000_000.0)
    if callable(spoil):
        spoil(dest)
    now = 1_800_000_000.0 + (2 * DAY if ntrip else 100)
    state = probed(dest, now)
    opts = dict(options)
    hardware_id = opts.pop("hardware_id", "gw-01")
    seen = ztp_deployed(state, hardware_id, str(dest), None, None, "0600", **opts)
    got, _parts = provision(api, dest, now, state, **dict(opts, hardware_id=hardware_id))
    kept = not got.get("failed") and not got["api_called"] and not got["changed"]
    assert seen["current"] is kept, (seen, got)
    assert seen["reason"] == got["reason"], (seen, got)
    if seen["current"]:
        assert {k: seen[k] for k in ("plan", "service", "regions", "client_id")} == {
            k: got[k] for k in ("plan", "service", "regions", "client_id")
        }


def test_ztp_deployed_filter_is_never_current_on_a_probe_read_for_something_else(tmp_path, pki, run):
    from ansible_collections.gnss.pointperfect.plugins.filter.ztp_deployed import ztp_deployed  # noqa: PLC0415

    api = FakeApi(lambda now: mqtt_body(pki))
    dest = tmp_path / "d"
    run(api, dest, 1_800_000_000.0)
    state = probed(dest, 1_800_000_100.0)
    assert ztp_deployed(state, "gw-01", str(dest), None, None, "0600")["current"] is True
    assert ztp_deployed(state, "gw-01", str(dest), None, None, "0640")["current"] is False  # another mode
    assert ztp_deployed(dict(state, ids_known=False), "gw-01", str(dest), None, None, "0600")["current"] is False
    assert ztp_deployed(None, "gw-01", str(dest), None, None, "0600")["current"] is False
    assert ztp_deployed(state, "", str(dest), None, None, "0600")["current"] is False
    assert ztp_deployed(state, "gw-01", str(dest), None, None, "0600", region="nowhere")["current"] is False


def test_ztp_deployed_defaults_are_the_modules():
    """An unset option (None) takes the ztp module's own default, typed as the module types it."""
    from ansible_collections.gnss.pointperfect.plugins.module_utils._ztp_options import ztp_argument_spec  # noqa: PLC0415
    from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_deployed import (  # noqa: PLC0415
        DECISION_OPTIONS,
        decision_options,
    )

    spec = ztp_argument_spec()
    assert decision_options({}) == {name: spec[name]["default"] for name in DECISION_OPTIONS}
    assert decision_options({"renew_before_days": "9", "force": "yes", "region": None})["renew_before_days"] == 9
    with pytest.raises(ZtpError, match="renew_before_days"):
        decision_options({"renew_before_days": "soon"})


def test_the_roles_no_op_decision_gives_the_filter_the_ztp_tasks_options():
    """vars/main.yml's __pointperfect_ztp_deployed (the no-op decision) passes the filter the same role variables as
    credentials.yml passes the ztp task, for every option the decision reads."""
    import re  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    import yaml  # noqa: PLC0415

    role = Path(__file__).resolve().parents[4] / "roles" / "gateway"
    decision = yaml.safe_load((role / "vars" / "main.yml").read_text())["__pointperfect_ztp_deployed"]
    task = yaml.safe_load((role / "tasks" / "credentials.yml").read_text())[0]["gnss.pointperfect.ztp"]
    variable = re.compile(r"(?:__)?pointperfect_\w+(?:\.\w+)?")
    for option in ("renew_before_days", "refresh_after_days", "force", "region", "dest", "owner", "mode"):
        given = variable.findall(str(task[option]))
        assert given, option
        assert re.search(rf"\b{option}={re.escape(given[-1])}\b", decision), (option, given, decision)
    assert "group=__pointperfect_credentials_target.group" in decision  # the task omits it only on a fresh check run
    assert "__pointperfect_probe.hardware_id" in decision and "__pointperfect_probe.hardware_id" in task["hardware_id"]
