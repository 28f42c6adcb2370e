# Controller helper of the gateway role: builds (once, cached by build id) the forwarder as ONE zipapp with its pinned
# dependencies, plus its base64 text (what the role sends in one round trip, install_build.yml).
# Prints one JSON object: name, version, build_id, pyz, b64, exists, built. Run with the controller's Python.
# Standard library only, Python 3.10+ (pointperfect_controller_python need not be Ansible's Python): no tomllib.
# A failure exits 1 with ONE line on stderr naming its cause; the role shows that line.
import argparse
import ast
import base64
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipapp
from pathlib import Path

SKIP_DIRS = {"tests", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", ".venv"}


def source_files(src: Path) -> list[Path]:
    """Files that make up the package: everything but tests, build output and caches."""
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        files.extend(Path(root) / n for n in sorted(names) if not n.endswith((".pyc", ".pyo")))
    return files


def project_table(text: str) -> dict[str, str]:
    """The single-line string keys of pyproject.toml's [project] table (name, version): all this script needs, read
    without tomllib (Python 3.11+) so that a 3.10 controller works too."""
    values: dict[str, str] = {}
    in_project = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            in_project = line.split("#", 1)[0].strip() == "[project]"
            continue
        found = re.match(r"""^([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*')\s*(?:#.*)?$""", line)
        if in_project and found:
            values[found.group(1)] = ast.literal_eval(found.group(2))
    return values


def project_meta(src: Path) -> tuple[str, str]:
    """Distribution name and version from pyproject.toml (static, or __version__ when declared dynamic)."""
    try:
        project = project_table((src / "pyproject.toml").read_text())
    except (OSError, ValueError, SyntaxError) as exc:
        sys.exit(f"cannot read {src}/pyproject.toml: {exc}")
    name, version = project.get("name"), project.get("version")
    if not name:
        sys.exit(f"no [project] name in {src}/pyproject.toml")
    if not version:
        for init in sorted(src.glob("src/*/__init__.py")) + sorted(src.glob("*/__init__.py")):
            found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", init.read_text(), re.MULTILINE)
            if found:
                version = found.group(1)
                break
    if not version:
        sys.exit(f"cannot find the version of {name} in {src}/pyproject.toml")
    return name, version


MAIN = "import sys\n\nfrom pointperfect_forwarder.cli import main\n\nsys.exit(main())\n"


def pip(args: list[str]) -> None:
    """Runs `python -m pip ARGS` quietly; a failure exits with pip's first error on one line."""
    cmd = [sys.executable, "-m", "pip", *args[:1], "--quiet", "--disable-pip-version-check", *args[1:]]
    run = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if run.returncode:
        sys.exit(f"pip {args[0]} failed ({run.returncode}) on the controller: {pip_error(run.stderr or run.stdout)}")


def build(src: Path, pyz: Path, pip_args: list[str]) -> None:
    """pip wheel of a pristine copy of the source (the collection tree stays untouched) and its pinned dependencies,
    installed (no index, no byte-code) into one directory that becomes the zipapp, written atomically."""
    pyz.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=pyz.parent, prefix=".build-") as tmp:
        copy, wheels, app = Path(tmp) / "src", Path(tmp) / "wheels", Path(tmp) / "app"
        for f in source_files(src):
            target = copy / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
        pip(["wheel", "--wheel-dir", str(wheels), *pip_args, str(copy)])
        impure = sorted(w.name for w in wheels.glob("*.whl") if not w.name.endswith("-none-any.whl"))
        if impure:
            sys.exit(f"the forwarder build must be pure Python to fit every gateway, got: {', '.join(impure)}")
        pip(
            [
                "install",
                "--no-index",
                "--no-deps",
                "--no-compile",
                "--target",
                str(app),
                *map(str, wheels.glob("*.whl")),
            ]
        )
        shutil.rmtree(app / "bin", ignore_errors=True)  # console scripts: the zipapp's __main__ is the entry point
        (app / "__main__.py").write_text(MAIN)
        out = Path(tmp) / pyz.name
        zipapp.create_archive(app, out, interpreter="/usr/bin/env python3", compressed=True)
        b64 = out.with_name(out.name + ".b64")
        b64.write_bytes(base64.b64encode(out.read_bytes()))
        for f in (out, b64):
            f.chmod(0o644)
        os.replace(b64, pyz.with_name(pyz.name + ".b64"))
        os.replace(out, pyz)


def pip_error(output: str) -> str:
    """pip's first ERROR: line (else its last line), on one line."""
    lines = [" ".join(line.split()) for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors[0] if errors else lines[-1] if lines else "no output")[:500]


def require_pip() -> None:
    """The build runs `python -m pip wheel`: a controller Python without pip is named in one line."""
    if importlib.util.find_spec("pip") is None:
        version = ".".join(map(str, sys.version_info[:3]))
        sys.exit(
            f"the controller Python {sys.executable} ({version}) has no pip, which builds the forwarder zipapp: "
            "install python3-pip (or pip into that venv) or set pointperfect_controller_python to a Python with pip"
        )


def main() -> None:
    ap = argparse.ArgumentParser(prog="forwarder_build.py")
    ap.add_argument("--src", required=True, type=Path)
    ap.add_argument("--cache-dir", required=True, type=Path)
    ap.add_argument("--pip-arg", action="append", default=[])
    ap.add_argument("--no-build", action="store_true", help="only report (check mode)")
    args = ap.parse_args()

    src = args.src.resolve()
    name, version = project_meta(src)
    digest = hashlib.sha256()
    for f in source_files(src):
        digest.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes() + b"\0")
    build_id = f"{version}-{digest.hexdigest()[:12]}"
    pyz = args.cache_dir.expanduser().resolve() / f"{name}-{build_id}.pyz"
    b64 = pyz.with_name(pyz.name + ".b64")

    built = False
    if not b64.is_file():
        require_pip()  # also in check mode (--no-build): it predicts the failure of the real run
        if not args.no_build:
            build(src, pyz, args.pip_arg)
            built = True
    print(
        json.dumps(
            {
                "name": name,
                "version": version,
                "build_id": build_id,
                "pyz": str(pyz),
                "b64": str(b64),
                "exists": b64.is_file(),
                "built": built,
            }
        )
    )


if __name__ == "__main__":
    main()
