"""Run tasks on localhost with the gateway role's defaults and vars loaded, as the installed collection has them: how
the controller and hardening tests render the role's variables and templates with the real ansible-core."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

PLAYBOOK_BIN = str(Path(sys.executable).with_name("ansible-playbook"))


def role_dir(collections_path) -> Path:
    return Path(collections_path) / "ansible_collections" / "gnss" / "pointperfect" / "roles" / "gateway"


def run_role_tasks(ansible_env: dict, collections_path, workdir: Path, tasks: list, variables: dict) -> None:
    """One play on localhost (vars_files: the role's defaults, then vars/main.yml; plus role_path and `variables`)
    running `tasks`; fails the test with the output's tail when ansible-playbook fails."""
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
