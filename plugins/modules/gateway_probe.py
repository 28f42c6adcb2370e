#!/usr/bin/python
# Read-only probe of a gateway in one round trip (stdlib only): the facts the gateway role decides on (hardware id,
# service account, config directory, unit and its state, installed build, deployed credentials, hashes of the deployed
# files) and its preflight, each as a typed value; never a secret (hashes and public fields only).
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


DOCUMENTATION = r"""
---
module: gateway_probe
short_description: Read what the gateway role decides on, in one round trip
version_added: 0.1.0
description:
  - Reads, in B(one) module run on the target, the facts the gnss.pointperfect.gateway role needs before it
    changes anything. Each is asked for by its own option and returned as a typed value; what is not asked for
    is returned as V(null).
  - The app-specific id of C(/etc/machine-id) (O(machine_id)), the service account compared with the wanted one
    (O(account)), the config directory's type, mode and owner (O(config_dir)), whether the systemd unit file
    exists (O(unit)), the unit's enabled and active state (O(service)), the installed build marker
    (O(build_marker)), the deployed ZTP credentials as the M(gnss.pointperfect.ztp) decision reads them
    (O(credentials)), the SHA-256 and attributes of deployed files (O(files)) and the preflight of what the
    PointPerfect forwarder needs on the target (O(preflight)).
  - Never returns a secret (no private key, NTRIP password or key value), only hashes and public fields.
  - Never changes anything; works on targets whose Python is older than the forwarder needs, so that the
    preflight can report them.
author:
  - gnss.pointperfect maintainers (@gnss-pointperfect)
requirements:
  - On the target, Python 3 standard library only.
extends_documentation_fragment:
  - gnss.pointperfect.attributes.info_module
options:
  machine_id:
    description:
      - Return RV(app_specific_id), derived from C(/etc/machine-id) on the target.
      - The file is read directly, not the Ansible fact, which prefers a C(/var/lib/dbus/machine-id) that cloned
        images often share.
    type: bool
    default: false
  default_mac:
    description:
      - Return RV(default_mac), the MAC address of the default IPv4 interface, as Ansible's setup module reports
        C(default_ipv4.macaddress) (the device of C(ip -4 route get 8.8.8.8), a route lookup that sends nothing;
        without C(ip), the default route of C(/proc/net/route) with the lowest metric).
    type: bool
    default: false
  account:
    description:
      - The service account as it should be; RV(account) returns it as found and whether it is as wanted.
    type: dict
    suboptions:
      user:
        description: The service user.
        type: str
        required: true
      group:
        description: Its primary group.
        type: str
      serial_group:
        description: A supplementary group the user must be a member of.
        type: str
      home:
        description: Its home directory.
        type: path
      shell:
        description: Its login shell.
        type: path
      output_dir:
        description: A directory the service writes its output file in (file output); it must exist as a
          directory (a link to one counts), which M(gnss.pointperfect.gateway_account) ensures.
        type: path
  config_dir:
    description: A directory whose type, mode and owner are returned in RV(config_dir).
    type: path
  unit:
    description: Path of a systemd unit file; RV(unit) says whether it exists.
    type: path
  build_marker:
    description: A small file holding the id of the installed build, returned in RV(build_marker).
    type: path
  service:
    description: A systemd unit name whose load, unit-file and active states are returned in RV(service).
    type: str
  credentials:
    description:
      - The ZTP credentials directory, read as M(gnss.pointperfect.ztp) reads it before it decides (the same code);
        the state is returned in RV(credentials). The gateway role passes it to the ztp task, which then needs no
        read of its own.
    type: dict
    suboptions:
      dest:
        description: The credentials directory.
        type: path
        required: true
      owner:
        description: The owner the credential files should have.
        type: str
      group:
        description: The group the credential files should have.
        type: str
      mode:
        description: The mode C(client.key) and C(credentials.json) should have.
        type: raw
        default: "0600"
  files:
    description: Files whose SHA-256, type, mode and owner are returned in RV(files) (never their content).
    type: list
    elements: path
    default: []
  preflight:
    description:
      - Checks of what the PointPerfect forwarder needs on the target; the facts and the problems found are
        returned in RV(preflight). A problem never fails the module; the caller decides (the gateway role asserts
        on RV(preflight.problems) before any change).
    type: dict
    suboptions:
      python:
        description:
          - Interpreter that runs the forwarder; its version and the standard modules the forwarder needs are
            checked.
        type: path
      min_python:
        description: Lowest Python version the forwarder supports.
        type: str
        default: "3.10"
      systemd:
        description: Check that systemd runs as PID 1.
        type: bool
        default: false
      writable:
        description: Directories that must be writable, checked at the nearest existing parent when missing.
        type: list
        elements: path
        default: []
      serial_group:
        description: Group the service user reaches the serial devices through; it must exist or be creatable.
        type: str
      user:
        description: Service user; when missing, C(useradd) must exist to create it.
        type: str
      devices:
        description: Configured serial devices; their path form is checked and, when present, type and group.
        type: list
        elements: dict
        default: []
        suboptions:
          path:
            description: The device path as configured.
            type: str
            required: true
          variable:
            description: The setting it comes from, named in the problem message.
            type: str
  hardware_id:
    description:
      - Derive the hardware id on the controller (the action plugin) and return it in RV(hardware_id), which is
        O(hardware_id.value) when set, else O(hardware_id.prefix) and, for O(hardware_id.source=machine_id), the
        app-specific id of C(/etc/machine-id) (O(machine_id) is then implied), for O(hardware_id.source=mac) the MAC
        address of the default IPv4 interface without colons (Ansible's C(default_ipv4.macaddress) fact when
        gathered, else O(default_mac)).
      - The task fails with one line when nothing was derived (the prefix alone) or the id holds a character other
        than letters, digits, C(.), C(_), C(:) and C(-).
    type: dict
    suboptions:
      value:
        description: A hardware id to use as it is.
        type: str
        default: ""
      prefix:
        description: Put before the derived suffix.
        type: str
        default: pp-
      source:
        description: Where the suffix comes from.
        type: str
        default: machine_id
        choices: [machine_id, mac]
  check_role_variables:
    description:
      - Check the gnss.pointperfect.gateway role's variables on the controller (the action plugin) before the probe
        runs, first against the role's argument specification (its C(meta/argument_specs.yml), as Ansible's
        automatic role argument validation checks them; the collection's playbooks import the role with
        C(rolespec_validate=false), so this task does it without a task of its own), then by the rules of the role's
        variable checks. When one fails, the task fails with the list of one-line messages (one line for the
        argument specification) and nothing is read on the target.
      - The action reads the variables from the task's own (an unset one counts as null; the ZTP token falls back to
        E(POINTPERFECT_ZTP_TOKEN) on the controller). None of them is sent, returned or logged.
    type: bool
    default: false
  fail_on_preflight:
    description:
      - Fail the task with one line (the host, then each problem's message) when RV(preflight.problems) is not empty.
    type: bool
    default: false
seealso:
  - module: gnss.pointperfect.gateway_files
  - module: gnss.pointperfect.gateway_info
  - plugin: gnss.pointperfect.app_specific_id
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Read what the role decides on and run the preflight, in one round trip
  gnss.pointperfect.gateway_probe:
    machine_id: true
    account:
      user: pointperfect
      group: pointperfect
      serial_group: dialout
      home: /opt/pointperfect
      shell: /usr/sbin/nologin
    config_dir: /etc/pointperfect
    unit: /etc/systemd/system/pointperfect-forwarder.service
    build_marker: /opt/pointperfect/.pointperfect-build
    preflight:
      python: /usr/bin/python3
      systemd: true
      writable: [/opt/pointperfect, /etc/pointperfect]
      serial_group: dialout
      user: pointperfect
      devices:
        - path: /dev/ttyACM0
          variable: pointperfect_serial_device
  register: probe

- name: The hardware id
  ansible.builtin.debug:
    msg: "pp-{{ probe.app_specific_id }}"
  when: probe.app_specific_id
"""

RETURN = r"""
app_specific_id:
  description:
    - With O(machine_id), the app-specific id of C(/etc/machine-id) (systemd's C(sd_id128_get_machine_app_specific)
      with this collection's app id, what C(systemd-id128 machine-id --app-specific=c9f4d130385c5b1ea446272ce2bc630f)
      prints), never the machine id itself.
    - V(null) without O(machine_id), and for a missing, uninitialized, malformed or all-zero machine id.
  returned: always
  type: str
  sample: 101d245a47334f9abe7ee6f8b590b709
hardware_id:
  description: With O(hardware_id), the derived hardware id; not returned without it.
  returned: when O(hardware_id) is given
  type: str
  sample: pp-101d245a47334f9abe7ee6f8b590b709
default_mac:
  description: With O(default_mac), the MAC address of the default IPv4 interface; V(null) without O(default_mac),
    without a default route, or when the interface has no MAC address (all zeros).
  returned: always
  type: str
  sample: "52:54:00:12:34:56"
account:
  description: With O(account), the account as found; V(null) without it.
  returned: always
  type: dict
  contains:
    user:
      description: The user (V(null) when missing) with its uid, primary gid and group name, home, shell and
        supplementary groups.
      type: dict
    group:
      description: The primary group O(account.group) (V(null) when missing or not asked for), its name and gid.
      type: dict
    serial_group:
      description: The group O(account.serial_group) (V(null) when missing or not asked for), its gid and members.
      type: dict
    output_dir:
      description: Only with O(account.output_dir), its type, mode and owner as RV(config_dir) reports them, links
        followed; V(null) when it does not exist.
      type: dict
    as_wanted:
      description: Whether the user and the groups exist, the user has the wanted primary group, home, shell
        and serial group membership, and O(account.output_dir) (when asked for) is a directory.
      type: bool
  sample:
    user: {name: pointperfect, uid: 998, gid: 997, group: pointperfect, home: /opt/pointperfect,
           shell: /usr/sbin/nologin, groups: [dialout]}
    group: {name: pointperfect, gid: 997}
    serial_group: {name: dialout, gid: 20, members: [pointperfect]}
    as_wanted: true
config_dir:
  description: For O(config_dir), its type (V(file), V(directory), V(link) or V(other), links not followed),
    permission bits as an octal string, owner and group (names, or numeric ids without a name); V(null) when it
    does not exist or was not asked for.
  returned: always
  type: dict
  sample: {type: directory, mode: "0750", owner: root, group: pointperfect}
unit:
  description: For O(unit), its path and whether it exists as a regular file (a unit masked by a link to
    C(/dev/null) does not count); V(null) without O(unit).
  returned: always
  type: dict
  sample: {path: /etc/systemd/system/pointperfect-forwarder.service, exists: true}
build_marker:
  description: For O(build_marker), the file's text; V(null) when it does not exist or was not asked for.
  returned: always
  type: str
  sample: 0.1.0-3f2a9c1d
service:
  description: For O(service), its C(LoadState), C(UnitFileState) and C(ActiveState) as C(systemctl show) reports
    them (V(null) each when systemctl cannot tell); V(null) without O(service).
  returned: always
  type: dict
  sample: {name: pointperfect-forwarder, load_state: loaded, unit_file_state: enabled, active_state: active}
credentials:
  description:
    - For O(credentials), the state M(gnss.pointperfect.ztp) decides on (the credential files' attributes, the public
      summary and SHA-256 of C(credentials.json), the public certificate; never the private key or a secret value),
      plus C(read_for) (the O(credentials) it was read for, mode as an octal string) and C(ids_known) (whether owner
      and group exist; when not and a credential file exists, the ztp task reads again after the account is created,
      while a gateway with none is missing them whatever the ids). V(null) without it.
  returned: always
  type: dict
files:
  description: For each path of O(files), V(null) when it does not exist, else its C(type) (V(file), V(directory),
    V(link) or V(other), links not followed), C(sha256) (regular files only), C(mode), C(owner) and C(group).
  returned: always
  type: dict
  sample:
    /etc/pointperfect/forwarder.json:
      type: file
      sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      mode: "0640"
      owner: root
      group: pointperfect
preflight:
  description:
    - With O(preflight), what was found (C(python), C(systemd), C(writable), C(account), C(devices)) and
      C(problems); an empty dictionary without O(preflight).
  returned: always
  type: dict
  contains:
    problems:
      description: What stops the forwarder from running on the target, each a C(check) (V(python), V(systemd),
        V(writable), V(account) or V(device)) and a C(message), one line naming the cause and the fix.
      returned: with O(preflight)
      type: list
      elements: dict
  sample:
    writable: [{path: /opt/pointperfect, checked: /opt, exists: false, writable: true, read_only: false,
                free_bytes: 1073741824, error: null}]
    devices: [{path: /dev/ttyACM0, variable: pointperfect_serial_device, form_error: null, exists: false,
               type: null, group: null, mode: null, reachable: null}]
    problems: []
"""

import hashlib  # noqa: E402 - Ansible modules import after DOCUMENTATION
import os  # noqa: E402
import stat  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_text  # noqa: E402
from ansible_collections.gnss.pointperfect.plugins.module_utils import (  # noqa: E402
    _account,
    _app_specific_id,
    _atomic,
    _preflight,
    _ztp_state,
)

MACHINE_ID = "/etc/machine-id"
READ_LIMIT = 64 * 1024
# the address Ansible's setup asks the routing table about for default_ipv4 (a lookup: nothing is sent)
ROUTE_PROBE = "8.8.8.8"
NO_MAC = "00:00:00:00:00:00"

ARGUMENT_SPEC = dict(
    machine_id=dict(type="bool", default=False),
    default_mac=dict(type="bool", default=False),
    account=dict(
        type="dict",
        options=dict(
            user=dict(type="str", required=True),
            group=dict(type="str"),
            serial_group=dict(type="str"),
            home=dict(type="path"),
            shell=dict(type="path"),
            output_dir=dict(type="path"),
        ),
    ),
    config_dir=dict(type="path"),
    unit=dict(type="path"),
    build_marker=dict(type="path"),
    service=dict(type="str"),
    credentials=dict(
        type="dict",
        options=dict(
            dest=dict(type="path", required=True),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw", default="0600"),
        ),
    ),
    files=dict(type="list", elements="path", default=[]),
    preflight=dict(type="dict", options=_preflight.ARGUMENT_SPEC),
    # handled on the controller by the action plugin (never sent to the target)
    hardware_id=dict(type="dict", options=_app_specific_id.HARDWARE_ID_OPTIONS),
    fail_on_preflight=dict(type="bool", default=False),
    check_role_variables=dict(type="bool", default=False),
)
SERVICE_PROPERTIES = (
    ("LoadState", "load_state"),
    ("UnitFileState", "unit_file_state"),
    ("ActiveState", "active_state"),
)


def read_small(path):
    """Text of a small file, None when it does not exist. A symlink is followed (/etc/machine-id may be one), but
    only to a regular file (a fifo would block)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    if st.st_size > READ_LIMIT:
        raise _atomic.AtomicWriteError("%s is larger than %d bytes, which the probe does not read" % (path, READ_LIMIT))
    try:
        with open(path, "rb") as f:
            data = f.read(READ_LIMIT + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _atomic.AtomicWriteError("cannot read %s: %s" % (path, e.strerror)) from None
    return to_text(data, errors="surrogate_or_strict")


def app_specific_id(path=MACHINE_ID):
    """The app-specific id of the machine id in path; None when it is missing, uninitialized, malformed or zero."""
    try:
        return _app_specific_id.app_specific_id(read_small(path))
    except ValueError:
        return None


def proc_default_device(route="/proc/net/route"):
    """The interface of the IPv4 default route with the lowest metric in /proc/net/route (up routes only)."""
    best = None
    for line in (read_small(route) or "").splitlines()[1:]:
        cols = line.split()
        if len(cols) < 8 or cols[1] != "00000000" or cols[7] != "00000000" or not int(cols[3], 16) & 1:
            continue
        if best is None or int(cols[6]) < best[0]:
            best = (int(cols[6]), cols[0])
    return best[1] if best else None


def default_mac(run_command, net="/sys/class/net", route="/proc/net/route"):
    """The MAC of the default IPv4 interface as setup's default_ipv4.macaddress: run_command(argv) returns (rc, out,
    err), or None when there is no `ip`; None without a default route or for an all-zero address."""
    ran = run_command(["ip", "-4", "route", "get", ROUTE_PROBE])
    device = None
    if ran is None:
        device = proc_default_device(route)
    elif ran[0] == 0 and ran[1]:
        words = ran[1].splitlines()[0].split()
        if words and words[0] == ROUTE_PROBE and "dev" in words[:-1]:
            device = words[words.index("dev") + 1]
    if not device or "/" in device or device.startswith("."):
        return None
    mac = (read_small(os.path.join(net, device, "address")) or "").strip()
    return mac if mac and mac != NO_MAC else None


def file_hash(path):
    """Type, SHA-256 (regular files only, never the content), mode and owner of a path; None when missing."""
    info = _account.stat_path(path)
    if info is None:
        return None
    try:
        data = _atomic.read_bytes(path) if info["type"] == "file" else None  # never through a link
    except OSError as e:
        raise _atomic.AtomicWriteError("cannot read %s: %s" % (path, e.strerror)) from None
    info["sha256"] = None if data is None else hashlib.sha256(data).hexdigest()
    return info


def credentials(wanted):
    """The ztp decision's state of the credentials directory (the ztp module's own read), with what it was read for.
    An owner or group that does not exist yet (a fresh gateway) matches no file: ids_known is then false."""
    mode = _atomic.parse_mode(wanted["mode"])
    ids, known = [], True
    for resolve, name in ((_atomic.resolve_uid, wanted["owner"]), (_atomic.resolve_gid, wanted["group"])):
        try:
            ids.append(resolve(name))
        except _atomic.AtomicWriteError:
            ids.append(-1)
            known = False
    state = _ztp_state.read_state(wanted["dest"], mode, ids[0], ids[1])
    state["read_for"] = {"dest": wanted["dest"], "owner": wanted["owner"], "group": wanted["group"],
                         "mode": "%04o" % mode}  # fmt: skip
    state["ids_known"] = known
    return state


def service_state(name, run_command):
    """LoadState, UnitFileState and ActiveState of a unit (None each when systemctl cannot tell): run_command(argv)
    returns (rc, stdout, stderr), or None when there is no systemctl."""
    argv = ["systemctl", "show", "--property=" + ",".join(prop for prop, key in SERVICE_PROPERTIES), "--", name]
    ran = run_command(argv)
    out = ran[1] if ran is not None and ran[0] == 0 else ""
    found = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    state = {"name": name}
    state.update((key, found.get(prop) or None) for prop, key in SERVICE_PROPERTIES)
    return state


def probe(params, run_command=None):
    """The module's result for its parameters: every key present, None (or {}) for what was not asked for."""
    unit = params["unit"]
    return {
        "app_specific_id": app_specific_id() if params["machine_id"] else None,
        "default_mac": default_mac(run_command) if params.get("default_mac") else None,
        "account": _account.account(params["account"]) if params["account"] else None,
        "config_dir": _account.stat_path(params["config_dir"]) if params["config_dir"] else None,
        "unit": {"path": unit, "exists": os.path.isfile(unit)} if unit else None,
        "service": service_state(params["service"], run_command) if params.get("service") else None,
        "build_marker": read_small(params["build_marker"]) if params["build_marker"] else None,
        "credentials": credentials(params["credentials"]) if params.get("credentials") else None,
        "files": dict((path, file_hash(path)) for path in params.get("files") or []),
        "preflight": _preflight.gather(params["preflight"]) if params["preflight"] else {},
    }


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    def run_command(argv):
        """(rc, stdout, stderr) of a program found on the target's PATH, None when it is not there."""
        path = module.get_bin_path(argv[0])
        return module.run_command([path, *argv[1:]], errors="surrogate_then_replace") if path else None

    try:
        result = probe(module.params, run_command)
    except _atomic.AtomicWriteError as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
