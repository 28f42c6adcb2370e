"""The gateway_template lookup (the role's no-op decision hashes what it renders against the probe's hash of the
deployed file): the same text as ansible.builtin.template renders for the role's two templates, for the plans and
outputs that change them, also with reuse (rendered once per case, then reused: the case order A, B, A); a missing
template is an error."""

from __future__ import annotations

import subprocess

from tests.role_play import PLAYBOOK_BIN, role_dir, run_role_tasks

CASES = {
    "mqtt-serial": {"__pointperfect_ztp": {"service": "mqtt", "plan": "ip"}},
    "lband-file": {
        "__pointperfect_ztp": {"service": "mqtt", "plan": "lband"},
        "pointperfect_lband_device": "/dev/ttyACM1",
        "pointperfect_output_type": "file",
        "pointperfect_output_path": "/var/lib/pointperfect/out.spartn",
    },
}
CASES["mqtt-serial-again"] = CASES["mqtt-serial"]
TEMPLATES = {"forwarder.json.j2": "/etc/pointperfect/forwarder.json",
             "pointperfect-forwarder.service.j2": "/etc/systemd/system/pointperfect-forwarder.service"}  # fmt: skip


def test_renders_what_the_template_module_renders(ansible_env, collections_path, tmp_path):
    templates = role_dir(collections_path) / "templates"
    tasks = []
    for case, case_vars in CASES.items():
        for name, dest in TEMPLATES.items():
            src = str(templates / name)
            tasks.append({"name": f"template {case} {name}", "vars": case_vars,
                          "ansible.builtin.template": {"src": src, "dest": str(tmp_path / f"{case}-{name}.core"),
                                                       "mode": "0600"}})  # fmt: skip
            for suffix, extra in (("ours", ""), ("reused", ", reuse=true")):
                lookup = f"{{{{ lookup('gnss.pointperfect.gateway_template', '{src}', dest='{dest}'{extra}) }}}}"
                tasks.append({"name": f"lookup {case} {name} {suffix}", "vars": case_vars,
                              "ansible.builtin.copy": {"content": lookup, "mode": "0600",
                                                       "dest": str(tmp_path / f"{case}-{name}.{suffix}")}})  # fmt: skip
    run_role_tasks(ansible_env, collections_path, tmp_path, tasks, {})
    seen = set()
    for case in CASES:
        for name in TEMPLATES:
            core = (tmp_path / f"{case}-{name}.core").read_bytes()
            assert (tmp_path / f"{case}-{name}.ours").read_bytes() == core, (case, name)
            assert (tmp_path / f"{case}-{name}.reused").read_bytes() == core, (case, name)
            seen.add(core)
    assert len(seen) == 4  # the cases do change both files (the third case is the first one again)
    unit = (tmp_path / "lband-file-pointperfect-forwarder.service.j2.ours").read_bytes()
    assert b"DeviceAllow=/dev/ttyACM1 rw" in unit


def test_a_missing_template_fails(ansible_env, collections_path, tmp_path):
    play = tmp_path / "missing.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"{{ lookup('gnss.pointperfect.gateway_template', 'no-such.j2') }}\"\n"
    )
    proc = subprocess.run([PLAYBOOK_BIN, "-i", "localhost,", "-c", "local", str(play)], env=ansible_env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode != 0
    assert "gateway_template: template no-such.j2 not found" in proc.stdout + proc.stderr
