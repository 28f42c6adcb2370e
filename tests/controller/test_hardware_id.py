"""The hardware id the gateway role derives (issue 13): pp- plus the app-specific hash of /etc/machine-id (systemd's
sd_id128_get_machine_app_specific scheme), never the machine id itself; pp-<MAC> unchanged; a missing, uninitialized
or all-zero machine id derives nothing, which the role's check turns into one line. Rendered with ansible-playbook
from the installed collection's variables."""

from __future__ import annotations

import hashlib
import hmac
import json

from tests.role_play import run_role_tasks

APP_ID = "c9f4d130385c5b1ea446272ce2bc630f"  # uuid5(NAMESPACE_DNS, "gnss.pointperfect"): never changes
MACHINE_ID = "0123456789abcdef0123456789abcdef"


def _expected(machine_id: str) -> str:
    digest = bytearray(hmac.new(bytes.fromhex(machine_id), bytes.fromhex(APP_ID), hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return "pp-" + digest.hex()


CASES = {
    "machine_id": (
        {"__pointperfect_probe": {"contents": {"/etc/machine-id": MACHINE_ID + "\n"}}},
        _expected(MACHINE_ID),
    ),
    "machine_id_upper": ({"__pointperfect_probe": {"contents": {"/etc/machine-id": MACHINE_ID.upper()}}}, None),
    "uninitialized": ({"__pointperfect_probe": {"contents": {"/etc/machine-id": "uninitialized\n"}}}, "pp-"),
    "zeros": ({"__pointperfect_probe": {"contents": {"/etc/machine-id": "0" * 32 + "\n"}}}, "pp-"),
    "missing": ({"__pointperfect_probe": {"contents": {"/etc/machine-id": None}}}, "pp-"),
    "mac": (
        {
            "pointperfect_hardware_id_source": "mac",
            "ansible_facts": {"default_ipv4": {"macaddress": "aa:bb:cc:00:11:22"}},
            "__pointperfect_probe": {"contents": {"/etc/machine-id": MACHINE_ID}},
        },
        "pp-aabbcc001122",
    ),
    "explicit": ({"pointperfect_hardware_id": "gw-01", "__pointperfect_probe": {"contents": {}}}, "gw-01"),
}


def test_derived_hardware_id(ansible_env, collections_path, tmp_path):
    tasks = [
        {
            "name": name,
            "ansible.builtin.set_fact": {
                f"id_{name}": "{{ __pointperfect_derived_hardware_id }}",
                f"err_{name}": "{{ __pointperfect_errors | select('match', 'Cannot use hardware id') | list }}",
            },
            "vars": {**overrides, "__pointperfect_hardware_id": "{{ __pointperfect_derived_hardware_id }}"},
        }
        for name, (overrides, _expect) in CASES.items()
    ]
    results = tmp_path / "ids.json"
    content = ", ".join(f"'{n}': [id_{n}, err_{n}]" for n in CASES)
    tasks.append(
        {
            "name": "write",
            "ansible.builtin.copy": {
                "content": "{{ {" + content + "} | to_json }}",
                "dest": str(results),
                "mode": "0600",
            },
        }
    )
    run_role_tasks(ansible_env, collections_path, tmp_path, tasks, {"pointperfect_state": "present"})
    got = json.loads(results.read_text())
    for name, (_overrides, expect) in CASES.items():
        hardware_id, errors = got[name]
        if expect is not None:
            assert hardware_id == expect, (name, got[name])
        assert MACHINE_ID not in hardware_id.lower(), (name, hardware_id)  # never the machine id itself
        # an id that could not be derived fails the role's check with one line; a derived one passes
        assert (len(errors) == 1) == (hardware_id == "pp-"), (name, got[name])
    assert got["machine_id_upper"][0] == _expected(MACHINE_ID)  # systemd reads either case: the same id
    assert len(got["machine_id"][0]) == 35
