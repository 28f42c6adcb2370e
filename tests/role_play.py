"""Run tasks on localhost with the gateway role's defaults and vars loaded, as the installed collection has them: how
the controller and hardening tests render the role's variables, templates and checks with the real ansible-core."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PLAYBOOK_BIN = str(Path(sys.executable).with_name("ansible-playbook"))


def role_dir(collections_path) -> Path:
    return Path(collections_path) / "ansible_collections" / "gnss" / "pointperfect" / "roles" / "gateway"


PLAY_CASE = re.compile(r'^\s*"msg": "CASE (\S+)"$')
PLAY_VALUE = re.compile(r'^\s*"msg": ("VALUE .*")$')
PLAY_FAILED = re.compile(r"^fatal: \[localhost\]: FAILED! => (\{.*\})$")


def run_role_tasks(ansible_env: dict, collections_path, workdir: Path, tasks: list, variables: dict) -> str:
    """One play on localhost (vars_files: the role's defaults, then vars/main.yml; plus role_path and `variables`)
    running `tasks`; fails the test with the output's tail when ansible-playbook fails, else returns its stdout."""
    role = role_dir(collections_path)
    play = [
        {
            "hosts": "localhost",
            "gather_facts": False,
            "vars_files": [str(role / "defaults" / "main.yml"), str(role / "vars" / "main.yml")],
            "vars": {"role_path": str(role), **variables},
            "tasks": tasks,
        }
    ]
    fd, playbook = tempfile.mkstemp(dir=workdir, prefix="play-", suffix=".yml")
    with open(fd, "w") as fh:
        fh.write(json.dumps(play))
    argv = [PLAYBOOK_BIN, "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
    proc = subprocess.run([*argv, playbook], env=ansible_env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


def render_templates(
    ansible_env: dict, collections_path, workdir: Path, template: str, cases: dict, *, variables: dict
) -> dict[str, Path]:
    """The role's templates/<template> rendered once per case (the case's variables over `variables`), by name."""
    src = str(role_dir(collections_path) / "templates" / template)
    out = {name: workdir / f"{name}-{template.removesuffix('.j2')}" for name in cases}
    tasks = [
        {
            "name": f"render {name}",
            "ansible.builtin.template": {"src": src, "dest": str(out[name]), "mode": "0600"},
            "vars": case_vars,
        }
        for name, case_vars in cases.items()
    ]
    run_role_tasks(ansible_env, collections_path, workdir, tasks, variables)
    return out


def failed_checks(
    ansible_env: dict, collections_path, workdir: Path, tasks_file: str, cases: dict, *, variables: dict, show: str = ""
) -> dict[str, list[str]]:
    """The messages of the tasks of the role's tasks/<tasks_file> that fail (the role's asserts), per case: the file
    is included once per case with the case's variables, its failures ignored. With `show` (an expression), the
    case's list ends with its value, as JSON, after the file ran."""
    tasks = []
    for name, case_vars in cases.items():
        tasks.append({"name": f"case {name}", "ansible.builtin.debug": {"msg": f"CASE {name}"}})
        tasks.append(
            {
                "name": f"checks {name}",
                "ansible.builtin.include_tasks": {
                    "file": str(role_dir(collections_path) / "tasks" / tasks_file),
                    "apply": {"ignore_errors": True},
                },
                "vars": case_vars,
            }
        )
        if show:
            value = {"msg": "VALUE {{ " + show + " | to_json }}"}
            tasks.append({"name": f"show {name}", "ansible.builtin.debug": value, "vars": case_vars})
    out = run_role_tasks(ansible_env, collections_path, workdir, tasks, variables)
    found, case = {name: [] for name in cases}, None
    for line in out.splitlines():
        if PLAY_CASE.match(line):
            case = PLAY_CASE.match(line).group(1)
        elif PLAY_FAILED.match(line):
            msg = json.loads(PLAY_FAILED.match(line).group(1))["msg"]
            found[case].extend(msg if isinstance(msg, list) else [msg])  # a checks task: one message per concern
        elif PLAY_VALUE.match(line):
            found[case].append(json.loads(json.loads(PLAY_VALUE.match(line).group(1))[len("VALUE ") :]))
    return found
