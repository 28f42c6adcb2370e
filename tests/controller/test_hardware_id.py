"""The hardware id the gateway role derives (issue 13): pp- plus the app-specific hash of /etc/machine-id (systemd's
sd_id128_get_machine_app_specific scheme), never the machine id itself; pp-<MAC> unchanged; a missing, uninitialized
or all-zero machine id derives nothing, which fails the probe task with one line. The derivation and its check run
in gateway_probe's action plugin (on the controller, from what the probe read); test_gateway_probe.py covers the
machine id files, and tests/e2e the role's probe task on real gateways."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from ansible_collections.gnss.pointperfect.plugins.action import gateway_probe as action

APP_ID = "c9f4d130385c5b1ea446272ce2bc630f"  # uuid5(NAMESPACE_DNS, "gnss.pointperfect"): never changes
MACHINE_ID = "0123456789abcdef0123456789abcdef"
ROLE_PATH = Path(__file__).resolve().parents[2] / "roles" / "gateway"
ROLE_DEFAULTS = {"value": "", "prefix": "pp-", "source": "machine_id"}  # pointperfect_hardware_id* defaults


def _expected(machine_id: str) -> str:
    digest = bytearray(hmac.new(bytes.fromhex(machine_id), bytes.fromhex(APP_ID), hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return "pp-" + digest.hex()


# Per case: the role's hardware_id option over its defaults, the probe's app_specific_id (the unit tests of
# gateway_probe derive it from the /etc/machine-id contents these cases are named after: a missing, uninitialized or
# all-zero one gives None), the default interface's MAC, and the id expected.
CASES = {
    **{name: ({}, None, None, "pp-") for name in ("uninitialized", "zeros", "missing")},
    "machine_id": ({}, _expected(MACHINE_ID)[3:], None, _expected(MACHINE_ID)),
    "mac": ({"source": "mac"}, _expected(MACHINE_ID)[3:], "aa:bb:cc:00:11:22", "pp-aabbcc001122"),
    "mac_missing": ({"source": "mac"}, _expected(MACHINE_ID)[3:], None, "pp-"),
    "explicit": ({"value": "gw-01"}, None, None, "gw-01"),
    "explicit_bad": ({"value": "gw 01/x"}, None, None, "gw 01/x"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_derived_hardware_id(name):
    """The id the probe's action derives, and its check failing with one line exactly when nothing usable was
    derived; never the machine id itself."""
    option, app_specific_id, mac, expect = CASES[name]
    spec = dict(ROLE_DEFAULTS, **option)
    hardware_id = action.derive_hardware_id(spec, app_specific_id, mac)
    assert hardware_id == expect
    assert MACHINE_ID not in hardware_id.lower()
    problem = action.hardware_id_problem(spec, hardware_id, "gw-01")
    assert (problem is not None) == (hardware_id == "pp-" or " " in hardware_id), (name, problem)
    if problem:
        assert problem.startswith(f'Cannot use hardware id "{hardware_id}"') and "\n" not in problem
        assert "  " not in problem and problem == problem.strip()
        assert f"make sure the {spec['source']} fact exists on gw-01" in problem
    if name == "machine_id":
        assert len(hardware_id) == 35


def test_fact_mac_only_from_gathered_facts():
    assert action.fact_mac({"ansible_facts": {"default_ipv4": {"macaddress": "aa:bb:cc:00:11:22"}}}) == (
        "aa:bb:cc:00:11:22"
    )
    assert action.fact_mac({"ansible_facts": {}}) is None
    assert action.fact_mac({}) is None


def _run_action(args: dict, probed: dict, task_vars: dict | None = None):
    """The action's result with the probe module replaced by `probed`; returns (result, module args sent)."""
    from unittest import mock  # noqa: PLC0415

    task = mock.MagicMock(args=args, async_val=0, check_mode=False, diff=False)
    task._role._role_path = str(ROLE_PATH)  # the role's meta/argument_specs.yml
    plugin = action.ActionModule(task, mock.MagicMock(), mock.MagicMock(), None, mock.MagicMock(), None)
    plugin._templar.template.side_effect = lambda value: value  # the task variables hold no templates here
    sent = {}

    def execute(module_name, module_args, task_vars):
        sent.update(module_args)
        assert module_name == "gnss.pointperfect.gateway_probe"
        return dict(probed)

    with mock.patch.object(plugin, "_execute_module", side_effect=execute):
        # an unset role variable (None in the settings' test data) is absent from a task's variables
        given = {k: v for k, v in (task_vars or {}).items() if v is not None}
        return plugin.run(task_vars={"inventory_hostname": "gw-01", **given}), sent


def test_action_asks_the_probe_for_the_source_and_fails_on_preflight_problems():
    """machine_id or default_mac asked for by the source (not when facts already hold the MAC, or the id is given);
    the controller-only options never reach the target; fail_on_preflight fails with one line naming each problem."""
    probed = {"app_specific_id": _expected(MACHINE_ID)[3:], "default_mac": "52:54:00:12:34:56", "preflight": {}}
    result, sent = _run_action({"hardware_id": {}, "files": []}, probed)
    assert sent == {"files": [], "machine_id": True, "default_mac": False}
    assert result["hardware_id"] == _expected(MACHINE_ID) and not result.get("failed")
    result, sent = _run_action({"hardware_id": {"source": "mac"}}, probed)
    assert sent == {"machine_id": False, "default_mac": True} and result["hardware_id"] == "pp-525400123456"
    facts = {"ansible_facts": {"default_ipv4": {"macaddress": "aa:bb:cc:00:11:22"}}}
    result, sent = _run_action({"hardware_id": {"source": "mac"}}, probed, facts)
    assert sent["default_mac"] is False and result["hardware_id"] == "pp-aabbcc001122"
    result, sent = _run_action({"hardware_id": {"value": "gw-01"}}, probed)
    assert sent == {} and result["hardware_id"] == "gw-01"
    problems = {"problems": [{"check": "python", "message": "Python 3.7 is too old"},
                             {"check": "systemd", "message": "systemd is not PID 1"}]}  # fmt: skip
    result, _sent = _run_action({"fail_on_preflight": True}, dict(probed, preflight=problems))
    assert result["failed"] and result["msg"] == "gw-01: Python 3.7 is too old. systemd is not PID 1"
    result, _sent = _run_action({}, dict(probed, preflight=problems))
    assert not result.get("failed") and "hardware_id" not in result
    result, _sent = _run_action({"hardware_id": {"source": "serial"}}, probed)
    assert result["failed"] and "source" in result["msg"]


def test_action_checks_the_settings_before_the_round_trip(monkeypatch):
    """check_role_variables: the role's variable checks on the controller, on the task's variables (templated one by
    one, unset ones null, the token from POINTPERFECT_ZTP_TOKEN when the variable is empty); a failing one fails the
    task with the list of one-line messages before the probe module runs, and the token is neither sent nor returned."""
    from tests.unit.plugins.plugin_utils.test_gateway_settings import GOOD, TOKEN  # noqa: PLC0415

    probed = {"app_specific_id": _expected(MACHINE_ID)[3:], "preflight": {}}
    args = {"check_role_variables": True, "hardware_id": {}}
    result, sent = _run_action(args, probed, dict(GOOD))
    assert not result.get("failed") and "check_role_variables" not in sent and TOKEN not in repr(result)
    bad = dict(GOOD, pointperfect_ztp_throttle=-1, pointperfect_metrics_port=70000)
    result, sent = _run_action(args, probed, bad)
    assert result["failed"] and sent == {} and len(result["msg"]) == 2
    assert all("\n" not in m and TOKEN not in m for m in result["msg"])
    # not asked: the variables are not checked
    result, sent = _run_action({"hardware_id": {}}, probed, bad)
    assert not result.get("failed") and sent


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"pointperfect_metrics_port": "nine"}, "pointperfect_metrics_port"),  # not an int
        ({"pointperfect_input": "carrier-pigeon"}, "pointperfect_input"),  # not one of the choices
        ({"pointperfect_ztp_tags": {"a": 1}}, "pointperfect_ztp_tags"),  # not a list
    ],
)
def test_action_checks_the_argument_specification_first(bad, named):
    """check_role_variables also runs Ansible's role argument validation (meta/argument_specs.yml, which the
    playbooks' rolespec_validate: false leaves to this task): a wrong type or choice fails the task in one line before
    the probe module runs, and the token is never in the message."""
    from tests.unit.plugins.plugin_utils.test_gateway_settings import GOOD, TOKEN  # noqa: PLC0415

    probed = {"app_specific_id": _expected(MACHINE_ID)[3:], "preflight": {}}
    args = {"check_role_variables": True, "hardware_id": {}}
    result, sent = _run_action(args, probed, dict(GOOD, **bad))
    assert result["failed"] and sent == {}, result
    assert len(result["msg"]) == 1, result["msg"]  # one line; the cross-field rules are moot then
    msg = result["msg"][0]
    assert msg.startswith("Validation of the role's variables against its argument specification failed")
    assert named in msg and "\n" not in msg and TOKEN not in msg
    # the role's automatic validation would have said the same
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: PLC0415

    spec = action.role_argument_spec(str(ROLE_PATH))
    own = ArgumentSpecValidator(spec).validate(
        {k: v for k, v in dict(GOOD, **bad).items() if k in spec and v is not None}
    )
    assert own.error_messages and all(m in msg for m in own.error_messages)


def test_role_settings_from_the_task_variables(monkeypatch):
    """Each INPUT templated by itself, unset ones None, the token's fallback to the controller's environment."""
    from tests.unit.plugins.plugin_utils.test_gateway_settings import GOOD, TOKEN  # noqa: PLC0415

    templated = []

    def template(value):
        templated.append(value)
        return "gw-01" if value == "{{ inventory_hostname }}" else value

    task_vars = dict(GOOD, pointperfect_ztp_given_name="{{ inventory_hostname }}", pointperfect_ztp_token="",
                     unrelated="{{ never }}")  # fmt: skip
    del task_vars["pointperfect_ztp_renew_before_days"]
    monkeypatch.setenv("POINTPERFECT_ZTP_TOKEN", TOKEN)
    settings = action.role_settings(task_vars, template)
    assert sorted(settings) == sorted(action.INPUTS) and "{{ never }}" not in templated
    assert settings["pointperfect_ztp_given_name"] == "gw-01" and settings["pointperfect_ztp_token"] == TOKEN
    assert settings["pointperfect_ztp_renew_before_days"] is None
    monkeypatch.delenv("POINTPERFECT_ZTP_TOKEN")
    assert action.role_settings(task_vars, template)["pointperfect_ztp_token"] == ""
    assert action.role_settings(dict(GOOD), template)["pointperfect_ztp_token"] == TOKEN
