"""Shared pytest setup: the collection for Ansible subprocesses (the simulated world's fixtures come from
pointperfect_sim's pytest plugin; pytest.ini puts the repo and the collection on the import path)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _collections_path(tmp_root: Path) -> str:
    """The installed collection tree (`make test` builds and installs it), else a symlinked tree for dev runs."""
    installed = os.environ.get("PP_COLLECTIONS_PATH")
    if installed:
        return installed
    tree = tmp_root / "ansible_collections" / "gnss"
    tree.mkdir(parents=True, exist_ok=True)
    link = tree / "pointperfect"
    if not link.exists():
        link.symlink_to(REPO)
    return str(tmp_root)


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory) -> str:
    return _collections_path(tmp_path_factory.mktemp("collections"))


@pytest.fixture(scope="session")
def ansible_env(collections_path) -> dict:
    """Environment for ansible-playbook subprocesses: the collection, no host key prompts, no retry files."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=collections_path,
        ANSIBLE_HOST_KEY_CHECKING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_PYTHON_INTERPRETER="auto_silent",
    )
    env.pop("POINTPERFECT_ZTP_TOKEN", None)
    return env
