"""The hardware id the gateway role derives (issue 13): pp- plus the app-specific hash of /etc/machine-id (systemd's
sd_id128_get_machine_app_specific scheme), never the machine id itself; pp-<MAC> unchanged; a missing, uninitialized
or all-zero machine id derives nothing, which the role's check turns into one line. The role's
tasks/hardware_id.yml runs with ansible-playbook from the installed collection; test_gateway_probe.py covers the
machine id files."""

from __future__ import annotations

import hashlib
import hmac

from tests.role_play import failed_checks

APP_ID = "c9f4d130385c5b1ea446272ce2bc630f"  # uuid5(NAMESPACE_DNS, "gnss.pointperfect"): never changes
MACHINE_ID = "0123456789abcdef0123456789abcdef"


def _expected(machine_id: str) -> str:
    digest = bytearray(hmac.new(bytes.fromhex(machine_id), bytes.fromhex(APP_ID), hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return "pp-" + digest.hex()


# The probe's app_specific_id per case (tests/unit/plugins/modules/test_gateway_probe.py derives it from the
# /etc/machine-id contents these cases are named after: a missing, uninitialized or all-zero one gives None).
CASES = {
    **{
        name: ({"__pointperfect_probe": {"app_specific_id": None}}, "pp-")
        for name in ("uninitialized", "zeros", "missing")
    },
    "machine_id": ({"__pointperfect_probe": {"app_specific_id": _expected(MACHINE_ID)[3:]}}, _expected(MACHINE_ID)),
    "mac": (
        {
            "pointperfect_hardware_id_source": "mac",
            "ansible_facts": {"default_ipv4": {"macaddress": "aa:bb:cc:00:11:22"}},
            "__pointperfect_probe": {"app_specific_id": _expected(MACHINE_ID)[3:]},
        },
        "pp-aabbcc001122",
    ),
    "explicit": ({"pointperfect_hardware_id": "gw-01", "__pointperfect_probe": {"app_specific_id": None}}, "gw-01"),
}


def test_derived_hardware_id(ansible_env, collections_path, tmp_path):
    """tasks/hardware_id.yml: the id it fixes, and its check failing with one line exactly when nothing was derived."""
    cases = {name: overrides for name, (overrides, _expect) in CASES.items()}
    got = failed_checks(
        ansible_env,
        collections_path,
        tmp_path,
        "hardware_id.yml",
        cases,
        variables={"pointperfect_state": "present"},
        show="__pointperfect_hardware_id",
    )
    for name, (_overrides, expect) in CASES.items():
        *errors, hardware_id = got[name]
        if expect is not None:
            assert hardware_id == expect, (name, got[name])
        assert MACHINE_ID not in hardware_id.lower(), (name, hardware_id)  # never the machine id itself
        # an id that could not be derived fails the role's check with one line; a derived one passes
        assert (len(errors) == 1) == (hardware_id == "pp-"), (name, got[name])
        assert all(e.startswith('Cannot use hardware id "pp-"') and "\n" not in e for e in errors), errors
    assert len(got["machine_id"][-1]) == 35
