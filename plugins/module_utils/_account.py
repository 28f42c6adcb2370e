# Stdlib-only read of the gateway's service account, config directory and output directory, and the one compare that
# decides whether they are as wanted: gateway_probe reports it (account.as_wanted), gateway_account acts on it
# (changed).
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# NOTE: THIS IS NOT A PUBLIC API.
# This module_utils is PRIVATE and should only be used by this collection.
# Breaking changes can occur any time, without notice.


import grp
import os
import pwd
import stat

from ansible_collections.gnss.pointperfect.plugins.module_utils import _atomic

# The config directory as the role wants it: owned by root, readable by the service group only.
DIRECTORY_OWNER = "root"
DIRECTORY_MODE = 0o750
# The output file's directory when it is created (file output): root-owned, the service group creates its file there.
OUTPUT_DIR_MODE = 0o770


def stat_path(path, follow=False):
    """Type, mode and owner of a path (links followed only with follow), None when it does not exist."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _atomic.AtomicWriteError("cannot stat %s: %s" % (path, e.strerror)) from None
    kinds = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "link"))
    info = {"type": next((name for test, name in kinds if test(st.st_mode)), "other")}
    info.update(_atomic.describe_attributes(st))
    return info


def group_name(gid):
    """Name of a gid, the number as text when it has none."""
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def read_group(name):
    """{name, gid, members} of a group, None when it is missing or not asked for."""
    if not name:
        return None
    try:
        entry = grp.getgrnam(name)
    except KeyError:
        return None
    return {"name": entry.gr_name, "gid": entry.gr_gid, "members": list(entry.gr_mem)}


def read_user(name):
    """{name, uid, gid, group, home, shell, groups} of a user (groups: the supplementary ones), None when missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    gids = os.getgrouplist(entry.pw_name, entry.pw_gid)
    groups = sorted(set(group_name(gid) for gid in gids if gid != entry.pw_gid))
    return {"name": entry.pw_name, "uid": entry.pw_uid, "gid": entry.pw_gid, "group": group_name(entry.pw_gid),
            "home": entry.pw_dir, "shell": entry.pw_shell, "groups": groups}  # fmt: skip


def differences(wanted, found):
    """What differs between the account `found` (read_account) and `wanted` ({user, group, serial_group, home,
    shell, output_dir}; the unset ones are not compared), in the order they are fixed: serial_group and group
    (missing), user (missing), then primary_group, serial_membership, home and shell of an existing user, and last
    output_dir (not a directory: missing, or something else there)."""
    user, group, serial_group = found["user"], found["group"], found["serial_group"]
    missing = [
        ("serial_group", wanted.get("serial_group") and serial_group is None),
        ("group", wanted.get("group") and group is None),
        ("user", user is None),
    ]
    parts = [name for name, differs in missing if differs]
    output_dir = (found.get("output_dir") or {}).get("type") != "directory"
    last = ["output_dir"] if wanted.get("output_dir") and output_dir else []
    if user is None:
        return parts + last
    members = serial_group["members"] if serial_group else []
    existing = [
        ("primary_group", wanted.get("group") is not None and (group is None or user["gid"] != group["gid"])),
        ("serial_membership", wanted.get("serial_group") is not None and user["name"] not in members),
        ("home", wanted.get("home") is not None and user["home"] != wanted["home"]),
        ("shell", wanted.get("shell") is not None and user["shell"] != wanted["shell"]),
    ]
    return parts + [name for name, differs in existing if differs] + last


def read_account(wanted):
    """The user and the groups `wanted` names, as found (None each when missing or not asked for); with an
    output_dir wanted, also its stat_path (links followed: a link to a directory is that directory)."""
    found = {
        "user": read_user(wanted["user"]),
        "group": read_group(wanted.get("group")),
        "serial_group": read_group(wanted.get("serial_group")),
    }
    if wanted.get("output_dir"):
        found["output_dir"] = stat_path(wanted["output_dir"], follow=True)
    return found


def account(wanted):
    """The account as found and whether it is as `wanted`: what gateway_account would leave unchanged."""
    found = read_account(wanted)
    found["as_wanted"] = not differences(wanted, found)
    return found


def directory_wanted(group, mode=DIRECTORY_MODE):
    """The config directory (with OUTPUT_DIR_MODE: a created output directory) as stat_path reports it when it is
    as wanted (the role compares the probe's config_dir with the same value)."""
    return {"type": "directory", "mode": "%04o" % mode, "owner": DIRECTORY_OWNER, "group": group}
