# Controller helper of the gateway role: builds (once, cached) the offline wheelhouse of the forwarder and its deps.
# Prints one JSON object: name, version, build_id, path, tar, pip_wheel, built. Run with the controller's Python.
# The wheels are also packed into one uncompressed tar next to the directory, so the role copies one file.
# Standard library only, Python 3.10+ (every controller Python ansible-core 2.17+ supports): no tomllib (3.11+).
# A failure exits 1 with ONE line on stderr naming its cause; the role shows that line.
import argparse
import ast
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
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


def build(src: Path, dest: Path, pip_version: str, pip_args: list[str]) -> None:
    """pip wheel of a pristine copy of the source (the collection tree stays untouched) plus pip itself."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".build-") as tmp:
        copy, out = Path(tmp) / "src", Path(tmp) / "wheels"
        for f in source_files(src):
            target = copy / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
        cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--wheel-dir", str(out)]
        cmd += [*pip_args, str(copy), f"pip=={pip_version}"]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if run.returncode:
            sys.exit(f"pip wheel failed ({run.returncode}) on the controller: {pip_error(run.stderr or run.stdout)}")
        impure = sorted(w.name for w in out.glob("*.whl") if not w.name.endswith("-none-any.whl"))
        if impure:
            sys.exit(f"the wheelhouse must be pure Python to fit every gateway, got: {', '.join(impure)}")
        if dest.exists():
            shutil.rmtree(dest)
        out.rename(dest)


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
            f"the controller Python {sys.executable} ({version}) has no pip, which builds the forwarder wheelhouse: "
            "install python3-pip (or pip into that venv) or set pointperfect_controller_python to a Python with pip"
        )


def pack(path: Path) -> Path:
    """wheelhouse-<id>.tar beside the wheelhouse directory (written once, atomically): the wheels at its root."""
    tar = path.parent / (path.name + ".tar")
    if tar.is_file():
        return tar
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pack-", suffix=".tar")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as out:
            for wheel in sorted(path.glob("*.whl")):
                info = out.gettarinfo(str(wheel), arcname=wheel.name)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mode = 0o644
                with wheel.open("rb") as f:
                    out.addfile(info, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, tar)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tar


def main() -> None:
    ap = argparse.ArgumentParser(prog="wheelhouse.py")
    ap.add_argument("--src", required=True, type=Path)
    ap.add_argument("--cache-dir", required=True, type=Path)
    ap.add_argument("--pip-version", required=True)
    ap.add_argument("--pip-arg", action="append", default=[])
    ap.add_argument("--no-build", action="store_true", help="only report (check mode)")
    args = ap.parse_args()

    src = args.src.resolve()
    name, version = project_meta(src)
    digest = hashlib.sha256()
    for f in source_files(src):
        digest.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes() + b"\0")
    build_id = f"{version}-{digest.hexdigest()[:12]}"
    path = args.cache_dir.expanduser().resolve() / f"wheelhouse-{build_id}"

    built = False
    if not path.is_dir():
        require_pip()  # also in check mode (--no-build): it predicts the failure of the real run
    if not path.is_dir() and not args.no_build:
        build(src, path, args.pip_version, args.pip_arg)
        built = True
    tar = pack(path) if path.is_dir() and not args.no_build else path.parent / (path.name + ".tar")
    pip_wheels = sorted(p.name for p in path.glob("pip-*.whl")) if path.is_dir() else []
    print(
        json.dumps(
            {
                "name": name,
                "version": version,
                "build_id": build_id,
                "path": str(path),
                "tar": str(tar),
                "exists": path.is_dir(),
                "pip_wheel": pip_wheels[0] if pip_wheels else None,
                "built": built,
            }
        )
    )


if __name__ == "__main__":
    main()
