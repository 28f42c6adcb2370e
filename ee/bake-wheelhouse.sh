#!/bin/sh
# Bakes the forwarder wheelhouse into the execution environment (ee/execution-environment.yml, final stage), so
# that no AWX job slice builds it again or needs PyPI: the role finds it in its cache and only copies it.
#   bake-wheelhouse.sh PYTHON COLLECTION_DIR CACHE_DIR
# Runs the role's own files/wheelhouse.py on the installed collection's forwarder/, as the role does
# (roles/gateway/tasks/install.yml), with the role's default pointperfect_pip_version: the build id (forwarder
# version + source hash) and the cache layout (CACHE_DIR/wheelhouse-<build id> and its .tar) are therefore the ones
# the role looks for when pointperfect_wheelhouse_cache_dir is CACHE_DIR.
set -eu
python=${1:?usage: bake-wheelhouse.sh PYTHON COLLECTION_DIR CACHE_DIR}
collection=${2:?usage: bake-wheelhouse.sh PYTHON COLLECTION_DIR CACHE_DIR}
cache=${3:?usage: bake-wheelhouse.sh PYTHON COLLECTION_DIR CACHE_DIR}
role=$collection/roles/gateway
pip_version=$(sed -n 's/^pointperfect_pip_version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$role/defaults/main.yml")
if [ -z "$pip_version" ]; then
    echo "bake-wheelhouse.sh: no pointperfect_pip_version in $role/defaults/main.yml" >&2
    exit 1
fi
mkdir -p "$cache"
"$python" "$role/files/wheelhouse.py" --src "$collection/forwarder" --cache-dir "$cache" --pip-version "$pip_version"
# Readable by every user; writable by group 0 like /runner (OpenShift runs the EE with an arbitrary uid in group 0),
# so a job that brings another forwarder build can still cache it there.
if [ "$(id -u)" = 0 ]; then
    chgrp -R 0 "$cache"
fi
chmod -R u+rwX,g+rwX,o+rX "$cache"
