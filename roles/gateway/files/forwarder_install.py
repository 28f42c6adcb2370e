# Gateway side of the forwarder install (install_build.yml runs it with pointperfect_gateway_python; stdlib only):
# reads the zipapp that forwarder_build.py made, base64 on stdin, unpacks it into INSTALL_DIR/forwarder-BUILD_ID,
# byte-compiles it with this Python (the unit's filesystem is read-only, so no __pycache__ is written at run time),
# points INSTALL_DIR/forwarder at it atomically, removes older builds and the venv of earlier releases, and writes
# the build marker last. A failure prints one line (the OSError, e.g. "[Errno 28] No space left on device") and exits 1.
import base64
import io
import os
import py_compile
import shutil
import sys
import zipfile

install_dir, build_id, marker = sys.argv[1:4]
name = "forwarder-" + build_id
final = os.path.join(install_dir, name)
staging = final + ".tmp"
link = os.path.join(install_dir, "forwarder")
os.umask(0o022)
try:
    data = base64.b64decode(sys.stdin.buffer.read(), validate=False)
    os.makedirs(install_dir, mode=0o755, exist_ok=True)
    os.chown(install_dir, 0, 0)  # root:root 0755, as the role always made it: the service reads it, never changes it
    os.chmod(install_dir, 0o755)  # noqa: S103 - the service user must read it
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(staging)
    for root, _dirs, files in os.walk(staging):
        for source in files:
            if source.endswith(".py"):
                path = os.path.join(root, source)
                shown = os.path.join(final, os.path.relpath(path, staging))  # the path tracebacks show
                py_compile.compile(path, dfile=shown, doraise=True)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(staging, final)
    if os.path.lexists(link + ".tmp"):  # left by a killed run
        os.unlink(link + ".tmp")
    os.symlink(name, link + ".tmp")
    os.replace(link + ".tmp", link)
    for old in os.listdir(install_dir):
        if old == "venv" or (old.startswith("forwarder-") and old != name):
            shutil.rmtree(os.path.join(install_dir, old), ignore_errors=True)
    with open(marker + ".tmp", "w") as f:
        f.write(build_id)
    os.chmod(marker + ".tmp", 0o644)
    os.replace(marker + ".tmp", marker)
except (OSError, ValueError, zipfile.BadZipFile, py_compile.PyCompileError) as exc:
    for junk in (staging, link + ".tmp", marker + ".tmp"):
        if os.path.isdir(junk) and not os.path.islink(junk):
            shutil.rmtree(junk, ignore_errors=True)
        elif os.path.lexists(junk):
            os.unlink(junk)
    sys.exit(" ".join(str(exc).split()))
