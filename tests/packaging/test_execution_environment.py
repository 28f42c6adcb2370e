"""The execution environment for AWX: ansible-builder finds the collection's dependencies and renders a context;
bindep names the system packages on the EE base and on Debian; the forwarder build baked into the EE is the role's."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BUILDER = Path(sys.executable).with_name("ansible-builder")


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(line.split(">")[0].split("=")[0].split("<")[0].strip().lower())
    return names


def test_introspect_finds_collection_dependencies(collections_path):
    out = subprocess.run(
        [str(BUILDER), "introspect", "--sanitize", collections_path],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    data = yaml.safe_load(out)
    python_deps = {line.split(">")[0].split("=")[0].strip().lower() for line in data["python"]}
    # --sanitize leaves ansible-core out: the execution environment brings its own
    assert _requirement_names(REPO / "requirements.txt") - {"ansible-core"} <= python_deps
    system = " ".join(data["system"])
    assert "openssh-client" in system
    assert "mosquitto" in system  # test-profile entries are kept, tagged, for bindep to filter
    assert "test" in system


def test_create_renders_build_context(tmp_path):
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    reqs = yaml.safe_load((REPO / "ee" / "requirements.yml").read_text())
    assert reqs["collections"][0]["name"].endswith(f"gnss-pointperfect-{version}.tar.gz"), (
        "ee/requirements.yml is stale"
    )

    ee = tmp_path / "ee"
    shutil.copytree(REPO / "ee", ee)
    dist = tmp_path / ".build" / "dist"
    dist.mkdir(parents=True)
    subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-galaxy")),
            "collection",
            "build",
            "--output-path",
            str(dist),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    ctx = tmp_path / "context"
    subprocess.run(
        [str(BUILDER), "create", "-f", str(ee / "execution-environment.yml"), "-c", str(ctx)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    containerfile = next(p for p in (ctx / "Containerfile", ctx / "Dockerfile") if p.exists()).read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert (ctx / "_build" / "collections" / f"gnss-pointperfect-{version}.tar.gz").is_file()
    # the wheelhouse is baked in the final image, after the collection is installed there
    assert (ctx / "_build" / "pointperfect" / "bake-wheelhouse.sh").is_file()
    final = containerfile.split("AS final", 1)[1]
    assert final.index("COPY --from=galaxy /usr/share/ansible") < final.index("bake-wheelhouse.sh $PYCMD")
    assert EE_CACHE_DIR in final


EE_CACHE_DIR = "/opt/gnss-pointperfect/wheelhouse"


def test_bindep_names_openssh_for_the_ee_base_and_for_debian():
    depends = pytest.importorskip("bindep.depends")
    rules = depends.Depends((REPO / "bindep.txt").read_text())

    def packages(*profiles):
        return {rule[0] for rule in rules.active_rules(list(profiles))}

    # the EE base is CentOS Stream 9 (rpm); controllers and the test machine are Debian (dpkg)
    centos = packages("platform:rpm", "platform:centos", "platform:redhat")
    assert "openssh-clients" in centos and "openssh-client" not in centos
    debian = packages("platform:dpkg", "platform:debian")
    assert "openssh-client" in debian and "openssh-clients" not in debian
    assert "mosquitto" not in debian | centos  # test-only packages stay out of an EE
    assert "mosquitto" in packages("platform:dpkg", "platform:debian", "test")


def test_ee_definition_bakes_the_wheelhouse_where_the_docs_say():
    ee = yaml.safe_load((REPO / "ee" / "execution-environment.yml").read_text())
    assert ee["images"]["base_image"]["name"].startswith("quay.io/centos/centos:stream9")
    assert {"src": "bake-wheelhouse.sh", "dest": "pointperfect"} in ee["additional_build_files"]
    steps = " ".join(ee["additional_build_steps"]["append_final"])
    assert "bake-wheelhouse.sh $PYCMD /usr/share/ansible/collections/ansible_collections/gnss/pointperfect" in steps
    assert EE_CACHE_DIR in steps
    assert EE_CACHE_DIR in (REPO / "docs" / "scaling.md").read_text()


def test_baked_wheelhouse_is_the_one_the_role_reuses(tmp_path, collections_path):
    """The EE's build step on the installed collection, then the role's own lookup (forwarder_build.py as install.yml
    runs it, in check mode so that it cannot build): the same build id, found, with its zipapp and its base64."""
    collection = Path(collections_path) / "ansible_collections" / "gnss" / "pointperfect"
    role = collection / "roles" / "gateway"
    cache = tmp_path / "wheelhouse"
    bake = subprocess.run(
        ["sh", str(REPO / "ee" / "bake-wheelhouse.sh"), sys.executable, str(collection), str(cache)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if bake.returncode and re.search(
        r"No matching distribution|Could not find a version|NewConnectionError", bake.stderr
    ):
        pytest.skip(f"no package index reachable for pip wheel: {bake.stderr.strip()[-300:]}")
    assert bake.returncode == 0, bake.stdout + bake.stderr
    baked = json.loads(bake.stdout.strip().splitlines()[-1])
    assert baked["built"] and baked["exists"]

    lookup = subprocess.run(
        [
            sys.executable,
            str(role / "files" / "forwarder_build.py"),
            "--src",
            str(role / ".." / ".." / "forwarder"),  # the role's __pointperfect_forwarder_src
            "--cache-dir",
            str(cache),
            "--no-build",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(lookup.stdout)
    assert found["exists"] and not found["built"]
    assert found["build_id"] == baked["build_id"]
    assert Path(found["pyz"]).is_file() and Path(found["b64"]).is_file()
    assert Path(found["pyz"]).parent == cache.resolve()
