"""The gateway side of the role's install (roles/gateway/files/forwarder_install.py, as install_build.yml runs it:
the zipapp base64 on stdin): unpacked, byte-compiled for the Python that runs it, the link switched, older builds
and an earlier release's venv removed, the marker written last; a failure is one line and leaves no marker."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALLER = (REPO / "roles" / "gateway" / "files" / "forwarder_install.py").read_text()
MAIN = "import sys\nfrom app import VERSION\nprint(VERSION)\nsys.exit(0)\n"


def zipapp(version: str) -> bytes:
    """A small zipapp shaped like the forwarder's: __main__.py and a package."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__main__.py", MAIN)
        archive.writestr("app/__init__.py", f"VERSION = {version!r}\n")
        archive.writestr("app-1.dist-info/METADATA", "Name: app\n")
    return buf.getvalue()


def install(where: Path, build_id: str, payload: bytes) -> subprocess.CompletedProcess:
    """The installer as the role runs it: `python -c SCRIPT INSTALL_DIR BUILD_ID MARKER`, base64 plus a newline."""
    argv = [sys.executable, "-c", INSTALLER, str(where), build_id, str(where / ".pointperfect-build")]
    data = base64.b64encode(payload) + b"\n"
    return subprocess.run(argv, input=data, capture_output=True, check=False)


def test_install_unpacks_compiles_links_and_marks(tmp_path):
    where = tmp_path / "opt" / "pointperfect"
    done = install(where, "1.0-aaa", zipapp("1.0"))
    assert done.returncode == 0, done.stderr
    assert (where / ".pointperfect-build").read_text() == "1.0-aaa"
    assert os.readlink(where / "forwarder") == "forwarder-1.0-aaa"
    assert oct(where.stat().st_mode & 0o7777) == "0o755"
    build = where / "forwarder-1.0-aaa"
    tag = sys.implementation.cache_tag
    assert (build / "__pycache__" / f"__main__.{tag}.pyc").is_file()
    assert (build / "app" / "__pycache__" / f"__init__.{tag}.pyc").is_file()
    assert sorted(p.name for p in where.iterdir()) == [".pointperfect-build", "forwarder", "forwarder-1.0-aaa"]
    # what the unit runs: the gateway's Python, isolated, writing no bytecode
    ran = subprocess.run([sys.executable, "-I", "-B", str(where / "forwarder")], capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout == "1.0\n", ran.stderr


def test_upgrade_removes_older_builds_and_the_venv_of_earlier_releases(tmp_path):
    where = tmp_path / "pp"
    assert install(where, "1.0-aaa", zipapp("1.0")).returncode == 0
    (where / "venv" / "bin").mkdir(parents=True)
    (where / "venv" / ".pointperfect-build").write_text("0.9-old")
    done = install(where, "2.0-bbb", zipapp("2.0"))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in where.iterdir()) == [".pointperfect-build", "forwarder", "forwarder-2.0-bbb"]
    assert (where / ".pointperfect-build").read_text() == "2.0-bbb"
    ran = subprocess.run([sys.executable, "-I", "-B", str(where / "forwarder")], capture_output=True, text=True)
    assert ran.stdout == "2.0\n", ran.stderr
    # the same build again (a marker lost): installed afresh, same result
    (where / ".pointperfect-build").unlink()
    assert install(where, "2.0-bbb", zipapp("2.0")).returncode == 0
    assert (where / ".pointperfect-build").read_text() == "2.0-bbb"


def test_a_bad_archive_fails_in_one_line_and_keeps_the_installed_build(tmp_path):
    where = tmp_path / "pp"
    assert install(where, "1.0-aaa", zipapp("1.0")).returncode == 0
    done = install(where, "2.0-bbb", b"not a zip")
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr.decode().splitlines() == ["File is not a zip file"]
    assert (where / ".pointperfect-build").read_text() == "1.0-aaa"
    assert sorted(p.name for p in where.iterdir()) == [".pointperfect-build", "forwarder", "forwarder-1.0-aaa"]


def test_a_syntax_error_fails_in_one_line_without_a_marker(tmp_path):
    where = tmp_path / "pp"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("__main__.py", "def broken(:\n")
    done = install(where, "1.0-aaa", buf.getvalue())
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and "__main__.py" in lines[0], lines
    assert sorted(p.name for p in where.iterdir()) == []
