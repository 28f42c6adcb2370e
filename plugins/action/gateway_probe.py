# Controller side of gnss.pointperfect.gateway_probe: checks the gateway role's variables (its argument specification
# and its cross-field rules), runs the probe module (the one round trip), then derives and checks the hardware id and,
# when asked, fails on the preflight's problems, each in one line, with no task of its own (a task costs every host a
# worker process on the controller).
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import os

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.gnss.pointperfect.plugins.module_utils._app_specific_id import HARDWARE_ID_OPTIONS
from ansible_collections.gnss.pointperfect.plugins.module_utils._ztp_options import HARDWARE_ID_PATTERN, TOKEN_ENV
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._gateway_settings import INPUTS
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._gateway_settings import errors as settings_errors

MODULE = "gnss.pointperfect.gateway_probe"
# the options only this action reads (the module never sees them)
ACTION_SPEC = {
    "hardware_id": {"type": "dict", "options": HARDWARE_ID_OPTIONS},
    "fail_on_preflight": {"type": "bool", "default": False},
    "check_role_variables": {"type": "bool", "default": False},
}


def role_settings(task_vars, template, names=INPUTS):
    """The role variables the checks read (INPUTS, and those of `names`), from the task's variables: each templated by
    itself (a plain value costs no Jinja compile; a dict of "{{ var }}" strings costs one per entry), None when unset,
    and the token falling back to the controller's POINTPERFECT_ZTP_TOKEN as the role's __pointperfect_token does."""
    settings = {name: template(task_vars[name]) if name in task_vars else None for name in {*INPUTS, *names}}
    if not settings["pointperfect_ztp_token"]:
        settings["pointperfect_ztp_token"] = os.environ.get(TOKEN_ENV, "")
    return settings


_SPECS = {}


def role_argument_spec(role_path):
    """The options of the role's entry point main (meta/argument_specs.yml), read once per process."""
    path = os.path.join(role_path, "meta", "argument_specs.yml")
    if path not in _SPECS:
        with open(path, "rb") as f:
            loaded = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
        _SPECS[path] = loaded["argument_specs"]["main"].get("options") or {}
    return _SPECS[path]


def argument_spec_errors(spec, task_vars, settings):
    """Ansible's own role argument validation (ansible.builtin.validate_argument_spec) of the variables the task sees,
    by their values in `settings` (templated once for both checks): the failures' messages."""
    values = {name: settings[name] for name in spec if name in task_vars}
    return ArgumentSpecValidator(spec).validate(values, validate_role_argument_spec=True).error_messages


def derive_hardware_id(spec, app_specific_id, mac):
    """The given id, else the prefix and the source's suffix: the app-specific id of the machine id, or the MAC of the
    default IPv4 interface without colons; the prefix alone when the source gave nothing."""
    if spec["value"]:
        return spec["value"]
    suffix = app_specific_id if spec["source"] == "machine_id" else (mac or "").replace(":", "")
    return spec["prefix"] + (suffix or "")


def hardware_id_problem(spec, hardware_id, host):
    """One line when the id cannot be used (nothing derived, or characters the API refuses), else None."""
    derived = bool(spec["value"]) or len(hardware_id) > len(spec["prefix"])
    if derived and HARDWARE_ID_PATTERN.match(hardware_id):
        return None
    return (
        'Cannot use hardware id "%s": set pointperfect_hardware_id, or make sure the %s fact exists on %s '
        "(letters, digits, . _ : - only)." % (hardware_id, spec["source"], host)
    )


def fact_mac(task_vars):
    """The MAC Ansible's facts hold for the default IPv4 interface, when facts were gathered."""
    facts = task_vars.get("ansible_facts") or {}
    return ((facts.get("default_ipv4") or {}).get("macaddress")) or None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        checked = ArgumentSpecValidator(ACTION_SPEC).validate(
            {k: self._task.args[k] for k in ACTION_SPEC if k in self._task.args}
        )
        if checked.error_messages:
            result.update(failed=True, msg="; ".join(checked.error_messages))
            return result
        mine = checked.validated_parameters
        if mine["check_role_variables"]:
            # before any round trip; never the values (the token). The argument specification first (a wrong type
            # makes the cross-field rules moot); it is the role's automatic validation, which the provision playbook
            # turns off (rolespec_validate: false) to save each host that task's worker process.
            role = getattr(self._task, "_role", None)
            spec = role_argument_spec(role._role_path) if role is not None else {}
            settings = role_settings(task_vars, self._templar.template, spec)
            failed = settings_errors(settings, argument_spec_errors(spec, task_vars, settings))
            if failed:
                result.update(failed=True, msg=failed)
                return result
        args = {k: v for k, v in self._task.args.items() if k not in ACTION_SPEC}
        spec = mine["hardware_id"]
        mac = None
        if spec and not spec["value"]:
            args["machine_id"] = spec["source"] == "machine_id"
            mac = fact_mac(task_vars) if spec["source"] == "mac" else None
            args["default_mac"] = spec["source"] == "mac" and mac is None
        result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        if result.get("failed"):
            return result
        host = task_vars.get("inventory_hostname", "")
        if spec:
            result["hardware_id"] = derive_hardware_id(
                spec, result.get("app_specific_id"), mac or result.get("default_mac")
            )
            problem = hardware_id_problem(spec, result["hardware_id"], host)
            if problem:
                result.update(failed=True, msg=problem)
                return result
        problems = (result.get("preflight") or {}).get("problems") or []
        if mine["fail_on_preflight"] and problems:
            result.update(failed=True, msg="%s: %s" % (host, ". ".join(p["message"] for p in problems)))
        return result
