#!/usr/bin/env bash
# Runs `ansible-test sanity` on the installed collection. ansible-test bootstraps pip in each sanity venv with a
# get-pip.py it downloads from a host outside PyPI; we give it a stand-in that runs pip from PyPI's pip wheel.
set -euo pipefail
coll_dir=$1; shift
bin=$(cd "$(dirname "$0")/../.venv/bin" && pwd)
home=$(cd "$(dirname "$0")/.." && pwd)/.build/ansible-test-home
pip_version=$("$bin/python" - <<'PY'
from ansible_test._internal.python_requirements import get_venv_packages
class _Py:  # get_venv_packages only reads .version
    version = "%d.%d" % __import__("sys").version_info[:2]
print(get_venv_packages(_Py())["pip"])
PY
)
cache="$home/.ansible/test/cache"
mkdir -p "$cache"
wheel="$cache/pip-${pip_version}-py3-none-any.whl"
[ -f "$wheel" ] || "$bin/pip" download -q --no-deps -d "$cache" "pip==${pip_version}"
cat > "$cache/get_pip_${pip_version//./_}.py" <<PY
# Stand-in for get-pip.py: runs pip from the wheel beside it (as python pip.whl/pip does) to install pip itself.
import runpy
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]  # get-pip.py's own options
sys.argv = ["pip", "install", "--upgrade", "--force-reinstall", *args]
runpy.run_path("$wheel/pip", run_name="__main__")
PY
cd "$coll_dir"
[ -d .git ] || git init -q  # ansible-test lists a collection's files through git
HOME="$home" PATH="$bin:$PATH" ansible-test sanity --color no --python "$("$bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --requirements "$@"
