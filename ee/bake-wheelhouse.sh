#!/bin/sh
# Bakes the forwarder build (one zipapp and its base64) into the execution environment (ee/execution-environment.yml,
# final stage), so that no AWX job slice builds it again or needs PyPI: the role finds it in its cache and only sends it.
#   bake-wheelhouse.sh PYTHON COLLECTION_DIR CACHE_DIR
# Runs the role's own files/forwarder_build.py on the installed collection's forwarder/, as the role does
# (roles/gateway/tasks/install.yml): the build id (forwarder version + source hash) and the cache layout
# (CACHE_DIR/pointperfect-forwarder-<build id>.pyz and its .b64) are therefore the ones the role looks for when
# pointperfect_wheelhouse_cache_dir is CACHE_DIR.
set -eu
python=${1:?usage: bake-wheelhouse.sh PYTHON COLLECTION_DIR CACHE_DIR}
collection=${2:?usage: bake-wheelhouse.sh PYTHON COLLECTION_DIR CACHE_DIR}
cache=${3:?usage: bake-wheelhouse.sh PYTHON COLLECTION_DIR CACHE_DIR}
role=$collection/roles/gateway
mkdir -p "$cache"
"$python" "$role/files/forwarder_build.py" --src "$collection/forwarder" --cache-dir "$cache"
# Readable by every user; writable by group 0 like /runner (OpenShift runs the EE with an arbitrary uid in group 0),
# so a job that brings another forwarder build can still cache it there.
if [ "$(id -u)" = 0 ]; then
    chgrp -R 0 "$cache"
fi
chmod -R u+rwX,g+rwX,o+rX "$cache"
