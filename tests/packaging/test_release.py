"""The collection as published: the tarball's file list (built into a temporary directory) and the release notes
that antsibull-changelog writes for the first release (on a copy of the repository)."""

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]

# Everything at the top of the tarball; anything else (a new tool file, a test directory) must be decided on.
TOP_LEVEL = {
    "COPYING",
    "FILES.json",
    "MANIFEST.json",
    "README.md",
    "bindep.txt",
    "changelogs",
    "docs",
    "ee",
    "forwarder",
    "meta",
    "monitoring",
    "playbooks",
    "plugins",
    "requirements.txt",
    "roles",
    "tests",
}
REQUIRED = {
    "COPYING",
    "meta/runtime.yml",
    "meta/execution-environment.yml",
    "plugins/modules/ztp.py",
    "plugins/modules/gateway_info.py",
    "plugins/modules/gateway_files.py",
    "plugins/modules/gateway_probe.py",
    "plugins/modules/gateway_account.py",
    "plugins/action/ztp.py",
    "plugins/filter/fleet.py",
    "plugins/filter/fleet_health.yml",
    "plugins/filter/app_specific_id.py",
    "plugins/filter/app_specific_id.yml",
    "plugins/filter/ztp_token_error.py",
    "plugins/filter/ztp_token_error.yml",
    "forwarder/pyproject.toml",
    "roles/gateway/meta/argument_specs.yml",
    "playbooks/status.yml",
    "tests/sanity/ignore-2.19.txt",
}
FORBIDDEN_NAMES = {
    "Makefile",
    "ruff.toml",
    "pytest.ini",
    "requirements-test.txt",
    ".ansible-lint",
    ".gitignore",
    "conftest.py",
    "__pycache__",
}


def _source_copy(dest: Path) -> Path:
    """The repository's files as git sees them (tracked and untracked, not ignored), without .git."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def tarball_names(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with tarfile.open(out / f"gnss-pointperfect-{VERSION}.tar.gz") as tar:
        return {m.name.rstrip("/") for m in tar.getmembers()}


def test_tarball_top_level(tarball_names):
    assert {n.split("/", 1)[0] for n in tarball_names} == TOP_LEVEL


def test_tarball_holds_what_users_need(tarball_names):
    assert tarball_names >= REQUIRED, REQUIRED - tarball_names
    license_text = (REPO / "COPYING").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in license_text and "Version 3, 29 June 2007" in license_text
    assert "TERMS AND CONDITIONS" in license_text and "END OF TERMS AND CONDITIONS" in license_text


def test_tarball_leaves_development_files_out(tarball_names):
    for name in sorted(tarball_names):
        parts = name.split("/")
        assert not FORBIDDEN_NAMES & set(parts), name
        assert not any(p.endswith(".egg-info") for p in parts), name
        assert parts[0] not in ("simulator", "scripts", "bench", ".build", ".venv"), name
        assert parts[0] != "tests" or name in ("tests", "tests/sanity") or name.startswith("tests/sanity/"), name
        assert not (parts[0] == "forwarder" and len(parts) > 1 and parts[1] == "tests"), name


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """antsibull-changelog release for the galaxy.yml version, on a copy: (changelog.yaml release, CHANGELOG.rst)."""
    copy = _source_copy(tmp_path_factory.mktemp("repo"))
    (copy / "changelogs" / ".plugin-cache.yaml").unlink(missing_ok=True)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        [str(BIN / "antsibull-changelog"), "release", "--version", VERSION, "--date", "2026-01-01"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    changes = yaml.safe_load((copy / "changelogs" / "changelog.yaml").read_text())
    return changes["releases"][VERSION], (copy / "CHANGELOG.rst").read_text()


def test_first_release_notes(release):
    data, rst = release
    assert VERSION == "0.1.0"
    # code never released has nothing to fix or break: only the summary (and trivial history, not rendered)
    assert set(data["changes"]) <= {"release_summary", "trivial"}, sorted(data["changes"])
    for section in ("Bugfixes", "Breaking Changes", "Minor Changes", "Major Changes", "Deprecated Features"):
        assert section not in rst, section
    summary = data["changes"]["release_summary"]
    assert "simulator" not in summary or "not of this collection" in summary


def test_first_release_lists_every_module_plugin_and_role(release):
    data, rst = release
    modules = {m["name"]: m["description"] for m in data.get("modules", [])}
    assert set(modules) == {"ztp", "gateway_info", "gateway_files", "gateway_probe", "gateway_account"}, modules
    filters = {p["name"]: p["description"] for p in data.get("plugins", {}).get("filter", [])}
    fleet = {"fleet_health", "fleet_report", "fleet_table", "fleet_html", "fleet_json"}
    assert set(filters) == fleet | {
        "app_specific_id",
        "ztp_token_error",
        "gateway_settings_errors",
        "gateway_output_dir_ok",
        "ztp_deployed",
    }
    assert len(set(filters.values())) == 10, filters  # each filter's own description, not one repeated
    lookups = {p["name"] for p in data.get("plugins", {}).get("lookup", [])}
    assert lookups == {"gateway_template"}, lookups
    roles = {r["name"] for r in data.get("objects", {}).get("role", [])}
    assert roles == {"gateway"}, data.get("objects")
    for heading in ("New Modules", "New Plugins", "New Roles"):
        assert heading in rst
