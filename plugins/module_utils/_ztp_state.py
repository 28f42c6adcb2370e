# What the ztp decision needs from a gateway's credentials directory, read in the module run that asks for it: the
# ztp module's `_state: read` and the gateway_probe's `credentials` option return this same state (never a secret).

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!


import hashlib
import json
import os
import stat
import time

from ansible_collections.gnss.pointperfect.plugins.module_utils import _atomic, _credentials
from ansible_collections.gnss.pointperfect.plugins.module_utils._credentials import CERT, CERT_MODE, CREDS, KEY


def file_state(path, mode, uid, gid):
    """Stat of one credential file: existence, attributes (never content)."""
    try:
        st = os.lstat(path)
    except OSError:
        return {"exists": False}
    info = {
        "exists": True,
        "regular": stat.S_ISREG(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "mtime": st.st_mtime,
        "attributes_ok": not _atomic.attributes_differ(path, mode, uid, gid),
    }
    info.update(_atomic.describe_attributes(st))
    return info


def read_state(dest, mode, uid, gid):
    """Everything the decision needs, in one round trip: the files' attributes, the public summary of
    credentials.json and its hash, and the (public) certificate; never the private key or a secret value."""
    paths = dict((name, os.path.join(dest, name)) for name in _credentials.FILES)
    files = {
        CERT: file_state(paths[CERT], CERT_MODE, None, None),
        KEY: file_state(paths[KEY], mode, uid, gid),
        CREDS: file_state(paths[CREDS], mode, uid, gid),
    }
    state = {
        "dest": dest,
        "dest_exists": os.path.isdir(dest),
        "files": files,
        "credentials": None,
        "credentials_error": None,
        "certificate_pem": None,
        "now": time.time(),
    }
    if files[CREDS].get("regular"):
        try:
            raw = _atomic.read_bytes(paths[CREDS])
            if raw is None:
                raise OSError("not a regular file")
            state["credentials"] = _credentials.public_summary(json.loads(raw.decode("utf-8")))
            state["credentials_sha256"] = hashlib.sha256(raw).hexdigest()
            if state["credentials"] is None:
                state["credentials_error"] = "unknown format"
        except (OSError, ValueError) as e:
            state["credentials_error"] = e.__class__.__name__
    if files[CERT].get("regular"):
        try:
            pem = _atomic.read_bytes(paths[CERT], 65536)
        except OSError:
            pem = None
        if pem is not None:
            state["certificate_pem"] = pem.decode("ascii", "replace")
    return state
