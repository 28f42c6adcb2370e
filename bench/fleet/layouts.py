# Measures how the forwarder build is best shipped and run on a gateway (issue 16, fresh provision): the pip install
# into a venv from a wheelhouse (the role until 2026-11-27), the zipapp run as is, the zipapp with byte-code for the
# gateway's Python inside, and the zipapp unpacked and byte-compiled (the role now). Install time, size on disk, bytes
# sent, and the start-up time and RSS of a process that imports what the forwarder imports, with the gateway's Python.
# Reproduce (repo root): .venv/bin/python bench/fleet/layouts.py [--python /usr/bin/python3] [--runs 15]
import argparse
import base64
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "roles" / "gateway" / "files"
# what the forwarder imports at start (bench/forwarder's import floor), then its RSS and the CPU time the imports took
# (CPU, not wall time: the bench host is shared, and CPU time is what a gateway pays)
PROBE = (
    "import time, re; t = time.process_time(); import pointperfect_forwarder.cli, pointperfect_forwarder.inputs.mqtt; "
    "t = time.process_time() - t; rss = re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
    "print(t * 1000, int(rss) / 1024)"
)


def timed(argv: list[str], **kw) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, **kw)
    return time.perf_counter() - start


def size(path: Path) -> int:
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file() and not f.is_symlink()]
    return sum(f.stat().st_size for f in files)  # a venv's python links are the system's, not its own


def pyc_zipapp(pyz: Path, out: Path, python: str) -> None:
    """The zipapp with byte-code for `python` next to each source (compiled by that Python, as a gateway would)."""
    code = (
        "import sys, zipfile, importlib.util, marshal\n"
        "src, dst = sys.argv[1:3]\n"
        "with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, 'w', zipfile.ZIP_DEFLATED) as b:\n"
        "    for i in a.infolist():\n"
        "        data = a.read(i); b.writestr(i, data)\n"
        "        if i.filename.endswith('.py'):\n"
        "            c = compile(data, i.filename, 'exec', dont_inherit=True)\n"
        "            mtime = int(__import__('time').mktime(i.date_time + (0, 0, -1)))\n"
        "            head = importlib.util.MAGIC_NUMBER + (0).to_bytes(4, 'little')\n"
        "            head += (mtime & 0xFFFFFFFF).to_bytes(4, 'little')\n"
        "            head += (len(data) & 0xFFFFFFFF).to_bytes(4, 'little')\n"
        "            b.writestr(i.filename + 'c', head + marshal.dumps(c))\n"
    )
    subprocess.run([python, "-c", code, str(pyz), str(out)], check=True, capture_output=True)


def main() -> None:  # noqa: PLR0915 - the measurement, step by step in the order it runs
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", default="/usr/bin/python3", help="the gateways' interpreter")
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pp-layouts-"))
    try:
        build = json.loads(
            subprocess.run(
                [sys.executable, str(FILES / "forwarder_build.py"), "--src", str(REPO / "forwarder"),
                 "--cache-dir", str(work / "cache")],
                check=True, capture_output=True, text=True,
            ).stdout
        )  # fmt: skip
        pyz = Path(build["pyz"])
        # the earlier release's wheelhouse: the forwarder and its pins as wheels, plus pip 24.2 (run from its wheel)
        wheels = work / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(wheels),
                        str(REPO / "forwarder"), "pip==24.2"], check=True, capture_output=True)  # fmt: skip
        tar = work / "wheelhouse.tar"
        subprocess.run(["tar", "-cf", str(tar), "-C", str(wheels), "."], check=True)
        venv = work / "venv"
        pip_wheel = next(wheels.glob("pip-*.whl"))
        pip = [str(venv / "bin/python"), f"{pip_wheel}/pip", "install", "-q", "--no-index", "--no-cache-dir"]
        made = timed([args.python, "-m", "venv", "--without-pip", str(venv)])
        install = {"venv": made + timed([*pip, "--find-links", str(wheels), "pointperfect-forwarder"])}
        pyc = work / "pyc.pyz"
        start = time.perf_counter()
        pyc_zipapp(pyz, pyc, args.python)  # what a gateway would run: its Python's byte-code into the archive
        install["zipapp + byte-code"] = time.perf_counter() - start
        unpacked = work / "unpacked"
        installer = (FILES / "forwarder_install.py").read_text()
        b64 = Path(build["b64"]).read_bytes()
        install["unpacked (role)"] = timed(
            [args.python, "-c", installer, str(unpacked), build["build_id"], str(unpacked / ".marker")], input=b64
        )
        install["zipapp"] = 0.0
        sent = {"venv": size(tar), "zipapp": len(b64), "zipapp + byte-code": len(base64.b64encode(pyc.read_bytes())),
                "unpacked (role)": len(b64)}  # fmt: skip
        disk = {"venv": size(venv), "zipapp": size(pyz), "zipapp + byte-code": size(pyc),
                "unpacked (role)": size(unpacked)}  # fmt: skip
        paths = {"venv": None, "zipapp": pyz, "zipapp + byte-code": pyc, "unpacked (role)": unpacked / "forwarder"}
        rows = {}
        for name, path in paths.items():
            # -s -B with PYTHONPATH = the build: the unit's -I would ignore PYTHONPATH (the same imports otherwise)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            if path is None:
                argv = [str(venv / "bin/python"), "-I", "-B", "-c", PROBE]
            else:
                argv = [args.python, "-s", "-B", "-c", PROBE]
                env["PYTHONPATH"] = str(path)
            starts, imports, rss = [], [], []
            for _ in range(args.runs):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                out = subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout.split()
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                starts.append(cpu * 1000)
                imports.append(float(out[0]))
                rss.append(float(out[1]))
            rows[name] = {
                "install_s": round(install[name], 2), "bytes_sent": sent[name], "disk_bytes": disk[name],
                "start_cpu_ms": round(statistics.median(starts), 1), "imports_ms": round(statistics.median(imports), 1),
                "rss_mb": round(statistics.median(rss), 2),
            }  # fmt: skip
        with zipfile.ZipFile(io.BytesIO(pyz.read_bytes())) as archive:
            files = len(archive.namelist())
        version = subprocess.run([args.python, "--version"], check=True, capture_output=True, text=True).stdout.strip()
        print(json.dumps({"python": version, "runs": args.runs, "zipapp_files": files, "layouts": rows}, indent=1))
        print("\n| layout | install on the gateway | sent | on disk | start-up CPU | of which imports | RSS |")
        print("|---|---|---|---|---|---|---|")
        for name, r in rows.items():
            print(f"| {name} | {r['install_s']} s | {r['bytes_sent'] / 1e6:.2f} MB | {r['disk_bytes'] / 1e6:.2f} MB "
                  f"| {r['start_cpu_ms']} ms | {r['imports_ms']} ms | {r['rss_mb']} MB |")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
