"""The execution environment for AWX: ansible-builder finds the collection's dependencies and renders a context."""

import shutil
import subprocess
import sys
from pathlib import Path

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
