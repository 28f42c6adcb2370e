#!/usr/bin/python
# The gateway's service account, config directory and output directory in one round trip (stdlib only): groupadd,
# useradd and usermod run only for the parts that differ, as decided by the compare gateway_probe reports
# (module_utils/_account.py).
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


DOCUMENTATION = r"""
---
module: gateway_account
short_description: Create the PointPerfect service account, config and output directories in one round trip
version_added: 0.1.0
description:
  - Ensures, in B(one) module run on the target, what four M(ansible.builtin.group), M(ansible.builtin.user) and
    M(ansible.builtin.file) tasks would, at about a quarter of their SSH round trips.
  - The serial group O(serial_group) exists (a system group when it is created), the service group O(group) exists
    (a system group), and the system user O(user) exists with O(group) as its primary group, membership in
    O(serial_group) added to its other groups (never replacing them), the login shell O(shell) and the home
    directory O(home) (never created).
  - The config directory O(config_dir) exists as a directory owned by C(root), group O(group), mode C(0750).
    Missing directories are created with these attributes from the start (missing parents too); an existing
    directory with other attributes never gets a permission bit before it has its final owner.
  - The output directory O(output_dir), when asked for and missing, is created owned by C(root), group O(group),
    mode C(0770), so that the service can create and write its file there (missing parents get C(root), O(group),
    C(0750)); the same way, never exposed before its owner and mode are right. An existing directory, or a link to
    one, is left as it is (it may be shared).
  - Uses the system tools C(groupadd), C(useradd) and C(usermod), each only when its part differs. Whether a part
    differs is decided by the same compare M(gnss.pointperfect.gateway_probe) reports in
    RV(gnss.pointperfect.gateway_probe#module:account.as_wanted), so the two never disagree.
author:
  - gnss.pointperfect maintainers (@gnss-pointperfect)
requirements:
  - On the target, Python 3 standard library only, and C(groupadd), C(useradd) and C(usermod) (Debian's C(passwd)
    package) when a part has to change.
extends_documentation_fragment:
  - gnss.pointperfect.attributes
attributes:
  check_mode:
    details:
      - Check mode reads the account and the directory and reports what would be created or changed
        (RV(created), RV(modified), RV(commands)); no tool runs and nothing is written.
  diff_mode:
    details:
      - The diff shows the groups, the user (primary group, supplementary groups, home, shell, comment) and the
        directories' type, mode and owner, before and after (O(output_dir) only when asked for).
  action:
    support: none
    details:
      - A plain module; everything runs on the target.
options:
  user:
    description: The service user, created as a system user when it is missing.
    type: str
    required: true
  group:
    description: The user's primary group, created as a system group when it is missing; also the group of
      O(config_dir).
    type: str
    required: true
  serial_group:
    description:
      - A supplementary group the user must be a member of (the group owning the receiver's serial device), created
        as a system group when it is missing.
      - The membership is added to the user's other supplementary groups, which are kept.
    type: str
  home:
    description: The user's home directory; it is neither created nor moved.
    type: path
    required: true
  shell:
    description: The user's login shell.
    type: path
    default: /usr/sbin/nologin
  comment:
    description:
      - The user's comment (GECOS field), set when the user is created or when another of its parts changes; a
        different comment alone changes nothing (the compare leaves it out).
    type: str
    default: PointPerfect correction forwarder
  config_dir:
    description: The config and credentials directory, owned by C(root), group O(group), mode C(0750).
    type: path
  output_dir:
    description:
      - The directory of the forwarder's output file (file output only). When it is missing it is created owned by
        C(root), group O(group), mode C(0770); an existing directory is not changed.
      - Anything else there (a file, a link to something other than a directory) fails the module, before any
        change.
    type: path
notes:
  - The C(system) flag of an existing user or group is not changed (as with M(ansible.builtin.user)).
  - Changing the home directory of a user who has running processes fails in C(usermod); stop them first.
seealso:
  - module: gnss.pointperfect.gateway_probe
  - module: ansible.builtin.user
  - module: ansible.builtin.group
"""

EXAMPLES = r"""
- name: Create the service account and the config directory
  gnss.pointperfect.gateway_account:
    user: pointperfect
    group: pointperfect
    serial_group: dialout
    home: /opt/pointperfect
    config_dir: /etc/pointperfect
  register: account

- name: The same, with file output (its directory is created if missing)
  gnss.pointperfect.gateway_account:
    user: pointperfect
    group: pointperfect
    serial_group: dialout
    home: /opt/pointperfect
    config_dir: /etc/pointperfect
    output_dir: /var/lib/pointperfect

- name: Only on a gateway where the service group did not exist yet
  ansible.builtin.debug:
    msg: a fresh gateway
  when: "'group' in account.created"
"""

RETURN = r"""
created:
  description: What was (in check mode, would be) created, in order, from V(serial_group), V(group), V(user),
    V(config_dir) and V(output_dir).
  returned: always
  type: list
  elements: str
  sample: [group, user, config_dir]
modified:
  description: What existed but was (in check mode, would be) changed, from V(user) and V(config_dir).
  returned: always
  type: list
  elements: str
  sample: [user]
commands:
  description: The tool runs, each an argument list, that were (in check mode, would be) made.
  returned: always
  type: list
  elements: list
  sample: [[groupadd, --system, pointperfect], [useradd, --system, --gid, pointperfect, --groups, dialout, --shell,
           /usr/sbin/nologin, --home-dir, /opt/pointperfect, --no-create-home, --comment,
           PointPerfect correction forwarder, pointperfect]]
account:
  description: The account as found after the run (before it in check mode), as
    RV(gnss.pointperfect.gateway_probe#module:account) returns it (with O(output_dir), its C(output_dir) too).
  returned: always
  type: dict
  sample:
    user: {name: pointperfect, uid: 998, gid: 997, group: pointperfect, home: /opt/pointperfect,
           shell: /usr/sbin/nologin, groups: [dialout]}
    group: {name: pointperfect, gid: 997, members: []}
    serial_group: {name: dialout, gid: 20, members: [pointperfect]}
    output_dir: {type: directory, mode: "0770", owner: root, group: pointperfect}
    as_wanted: true
config_dir:
  description: The type, mode, owner and group of O(config_dir) after the run (before it in check mode); V(null)
    when it does not exist or was not asked for.
  returned: always
  type: dict
  sample: {type: directory, mode: "0750", owner: root, group: pointperfect}
"""

import os  # noqa: E402 - Ansible modules import after DOCUMENTATION
import pwd  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.gnss.pointperfect.plugins.module_utils import _account, _atomic  # noqa: E402

ARGUMENT_SPEC = dict(
    user=dict(type="str", required=True),
    group=dict(type="str", required=True),
    serial_group=dict(type="str"),
    home=dict(type="path", required=True),
    shell=dict(type="path", default="/usr/sbin/nologin"),
    comment=dict(type="str", default="PointPerfect correction forwarder"),
    config_dir=dict(type="path"),
    output_dir=dict(type="path"),
)
# What to do when a tool fails: (tool, exit code or None for any other) -> the fix, after the tool's own last line.
FIXES = {
    ("usermod", 8): "stop the user's processes (systemctl stop pointperfect-forwarder) and re-run",
    ("groupadd", None): "check /etc/group and /etc/gshadow on the gateway (a name or gid taken, a locked or "
    "read-only file)",
    ("useradd", None): "check /etc/passwd, /etc/shadow and /etc/group on the gateway (a name or uid taken, a locked "
    "or read-only file)",
    ("usermod", None): "check /etc/passwd and /etc/group on the gateway (a locked or read-only file)",
}


class AccountError(Exception):
    """A part could not be made as wanted; the message is one line with the cause and the fix."""


def commands(params, found):
    """The tool runs (argv lists) that make the account as params want, given the account found; and the parts
    they create and modify."""
    parts = _account.differences(params, found)
    user, group, serial = params["user"], params["group"], params["serial_group"]
    runs, created, modified = [], [], []
    if "serial_group" in parts and serial != group:
        runs.append(["groupadd", "--system", serial])
        created.append("serial_group")
    if "group" in parts:
        runs.append(["groupadd", "--system", group])
        created.append("group")
    if "user" in parts:
        argv = ["useradd", "--system", "--gid", group]
        argv += ["--groups", serial] if serial else []
        argv += ["--shell", params["shell"], "--home-dir", params["home"], "--no-create-home"]
        runs.append([*argv, "--comment", params["comment"], user])
        created.append("user")
    elif parts:
        flags = {"primary_group": ["--gid", group], "serial_membership": ["--append", "--groups", serial],
                 "home": ["--home", params["home"]], "shell": ["--shell", params["shell"]]}  # fmt: skip
        argv = ["usermod"]
        for part in parts:
            argv += flags.get(part, [])
        if len(argv) > 1:
            if found.get("comment") != params["comment"]:
                argv += ["--comment", params["comment"]]
            runs.append([*argv, user])
            modified.append("user")
    return runs, created, modified


def comment_of(name):
    """The user's comment (GECOS), None when the user is missing."""
    try:
        return pwd.getpwnam(name).pw_gecos
    except KeyError:
        return None


def run_tool(module, argv):
    """Run a tool; a failure raises AccountError with its stderr's last line and the fix."""
    path = module.get_bin_path(argv[0])
    if path is None:
        raise AccountError("%s is missing on the gateway; install passwd (shadow utilities)" % argv[0])
    rc, out, err = module.run_command([path, *argv[1:]])
    if rc != 0:
        lines = [line.strip() for line in (err or out or "").splitlines() if line.strip()]
        fix = FIXES.get((argv[0], rc)) or FIXES[(argv[0], None)]
        raise AccountError("%s failed (exit %d): %s; %s" % (argv[0], rc, lines[-1] if lines else "no output", fix))


def make_directory(path, uid, gid, mode=_account.DIRECTORY_MODE):
    """Create path (mode) and its missing parents (0750), each uid:gid from the start (mkdir 0700 by root first)."""
    missing = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        current = os.path.dirname(current)
    for directory in reversed(missing):
        os.mkdir(directory, 0o700)
        os.lchown(directory, uid, gid)
        os.chmod(directory, mode if directory == path else _account.DIRECTORY_MODE)


def fix_directory(path, uid, gid):
    """Give an existing directory uid:gid 0750; bits are only taken away until the owner is right."""
    mode = int(_account.stat_path(path)["mode"], 8)
    os.chmod(path, mode & _account.DIRECTORY_MODE)
    os.lchown(path, uid, gid)
    os.chmod(path, _account.DIRECTORY_MODE)


def directory_step(params, found):
    """'created', 'modified' or None for the config directory, given its stat_path; a non-directory is an error."""
    path = params["config_dir"]
    if not path or found == _account.directory_wanted(params["group"]):
        return None
    if found is None:
        return "created"
    if found["type"] != "directory":
        raise AccountError(
            "%s is a %s, not a directory; remove it or set another config directory" % (path, found["type"])
        )
    return "modified"


def output_dir_step(params, found):
    """'created' or None for the output directory, given read_account's output_dir; anything but a directory (or a
    link to one) there is an error."""
    path = params.get("output_dir")
    if not path or (found is not None and found["type"] == "directory"):
        return None
    if found is None and not os.path.lexists(path):
        return "created"
    raise AccountError(
        "%s is a %s, not a directory; remove it or set another pointperfect_output_path"
        % (path, found["type"] if found else "link to nothing")
    )


def view(found, directory):
    """The account and the directory as the diff shows them (names, not ids)."""
    user = found["user"]
    if user is not None:
        user = {"primary_group": user["group"], "groups": user["groups"], "home": user["home"],
                "shell": user["shell"], "comment": found.get("comment")}  # fmt: skip
    shown = {
        "serial_group": "present" if found["serial_group"] else "absent",
        "group": "present" if found["group"] else "absent",
        "user": user,
        "config_dir": directory or "absent",
    }
    if "output_dir" in found:
        shown["output_dir"] = found["output_dir"] or "absent"
    return shown


def predicted(params, before, runs):
    """The diff's after-view in check mode: the before-view with every planned change applied."""
    after = dict(before, serial_group="present" if params["serial_group"] else before["serial_group"], group="present")
    if runs and runs[-1][0] in ("useradd", "usermod"):
        old = before["user"] or {"groups": []}
        groups = sorted(set(old["groups"]) | ({params["serial_group"]} if params["serial_group"] else set()))
        after["user"] = {"primary_group": params["group"], "groups": groups, "home": params["home"],
                         "shell": params["shell"], "comment": params["comment"]}  # fmt: skip
    if params["config_dir"]:
        after["config_dir"] = _account.directory_wanted(params["group"])
    if before.get("output_dir") == "absent":
        after["output_dir"] = _account.directory_wanted(params["group"], _account.OUTPUT_DIR_MODE)
    return after


def read(params):
    """The account (with the user's comment) and the config directory as found."""
    found = _account.read_account(params)
    found["comment"] = comment_of(params["user"])
    return found, _account.stat_path(params["config_dir"]) if params["config_dir"] else None


def ensure(module, params, check_mode):
    """Read, compare, run the tools for what differs, and read again. Returns the module's result."""
    found, directory = read(params)
    runs, created, modified = commands(params, found)
    step = directory_step(params, directory)
    output_step = output_dir_step(params, found.get("output_dir"))
    before = view(found, directory)
    if not check_mode:
        for argv in runs:
            run_tool(module, argv)
        if step is not None or output_step is not None:  # the group exists now
            ids = _atomic.resolve_uid(_account.DIRECTORY_OWNER), _atomic.resolve_gid(params["group"])
            if step is not None:
                (make_directory if step == "created" else fix_directory)(params["config_dir"], *ids)
            if output_step is not None:
                make_directory(params["output_dir"], *ids, mode=_account.OUTPUT_DIR_MODE)
    if step is not None:
        (created if step == "created" else modified).append("config_dir")
    if output_step is not None:
        created.append("output_dir")
    if check_mode:
        after, final_directory = predicted(params, before, runs), directory
    else:
        found, final_directory = read(params)
        after = view(found, final_directory)
        left = _account.differences(params, found)
        if left or directory_step(params, final_directory):
            raise AccountError("%s still differs after the run (%s); check the gateway's name service (nsswitch.conf)"
                               % (params["user"], ", ".join(left) or params["config_dir"]))  # fmt: skip
    account = dict((key, found[key]) for key in ("user", "group", "serial_group", "output_dir") if key in found)
    account["as_wanted"] = not _account.differences(params, found)
    result = {"changed": bool(created or modified), "created": created, "modified": modified, "commands": runs,
              "account": account, "config_dir": final_directory}  # fmt: skip
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = ensure(module, module.params, module.check_mode)
    except (AccountError, _atomic.AtomicWriteError) as e:
        module.fail_json(msg=str(e))
    except OSError as e:
        module.fail_json(msg="cannot make %s: %s; check that it is on a writable filesystem"
                         % (e.filename or module.params["config_dir"], e.strerror))  # fmt: skip
    module.exit_json(**result)


if __name__ == "__main__":
    main()
