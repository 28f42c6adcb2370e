# Stdlib-only preflight of a gateway: can it run the forwarder? Facts plus one-line problems (cause; fix).
# Runs on the target inside the role's probe (gateway_probe), so it must work, and report, on old
# gateways too: Python 3.6+ syntax, no third-party import, never raises for what it finds.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# NOTE: THIS IS NOT A PUBLIC API.
# This module_utils is PRIVATE and should only be used by this collection.
# Breaking changes can occur any time, without notice.


import grp
import importlib.util
import os
import pwd
import stat
import subprocess
import sys

# What the forwarder needs (forwarder/pyproject.toml requires-python) and where a supported release ships it.
MIN_PYTHON = "3.10"
SUPPORTED_RELEASES = "Debian 12, Ubuntu 22.04, Raspberry Pi OS bookworm or later"
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# Standard modules the forwarder's install (unpack, byte-compile) and its TLS need; Debian's python3-minimal lacks some.
NEEDED_MODULES = ("compileall", "ssl", "zipfile")
# Runs under the configured interpreter when it is not the one running this module: prints the version first
# (even a Python 2 gets that far), then the needed modules it lacks ("-" for none).
PROBE_SOURCE = (
    "import sys\n"
    "sys.stdout.write('%d.%d.%d\\n' % tuple(sys.version_info[:3]))\n"
    "sys.stdout.flush()\n"
    "import importlib.util\n"
    "missing = [m for m in " + repr(NEEDED_MODULES) + " if importlib.util.find_spec(m) is None]\n"
    "sys.stdout.write((','.join(missing) or '-') + '\\n')\n"
)
# The concerns the fleet report also checks (gateway_info): the platform, not the role's settings.
PLATFORM_DEFAULTS = {"python": "/usr/bin/python3", "min_python": MIN_PYTHON, "systemd": True}
# The argument spec of a preflight spec (gateway_probe's `preflight` option), documented there.
ARGUMENT_SPEC = dict(
    python=dict(type="path"),
    min_python=dict(type="str", default=MIN_PYTHON),
    systemd=dict(type="bool", default=False),
    writable=dict(type="list", elements="path", default=[]),
    serial_group=dict(type="str"),
    user=dict(type="str"),
    devices=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(path=dict(type="str", required=True), variable=dict(type="str")),
    ),
)


def _version_tuple(text):
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _which(name, extra=SBIN):
    path = os.environ.get("PATH", "").split(os.pathsep) + list(extra)
    for d in path:
        candidate = os.path.join(d, name)
        if d and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def python_facts(path, timeout=30):
    """Version and missing needed modules of the interpreter at path (in process when it is the running one)."""
    facts = {"path": path, "version": None, "missing_modules": None, "error": None}
    try:
        same = os.path.realpath(path) == os.path.realpath(sys.executable)
    except (OSError, ValueError):
        same = False
    if same:
        facts["version"] = "%d.%d.%d" % tuple(sys.version_info[:3])
        facts["missing_modules"] = [m for m in NEEDED_MODULES if importlib.util.find_spec(m) is None]
        return facts
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        facts["error"] = "missing"
        return facts
    try:
        proc = subprocess.Popen(
            [path, "-c", PROBE_SOURCE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        facts["error"] = "did not answer within %ds" % timeout
        return facts
    except OSError as e:
        facts["error"] = e.strerror or str(e)
        return facts
    lines = out.decode("utf-8", "replace").split()
    if lines:
        facts["version"] = lines[0]
    if len(lines) > 1:
        facts["missing_modules"] = [m for m in lines[1].split(",") if m and m != "-"]
    if not lines:
        tail = err.decode("utf-8", "replace").strip().splitlines()
        facts["error"] = tail[-1] if tail else "exited %d" % proc.returncode
    return facts


def systemd_facts():
    """Whether systemd runs as PID 1 (sd_booted(): /run/systemd/system exists) and PID 1's name."""
    try:
        with open("/proc/1/comm") as f:
            pid1 = f.read().strip() or None
    except OSError:
        pid1 = None
    return {"booted": os.path.isdir("/run/systemd/system"), "pid1": pid1}


def writable_facts(path):
    """Whether path can be created or written: checked at path or its nearest existing parent."""
    facts = {"path": path, "checked": None, "exists": False, "writable": False, "read_only": False,
             "free_bytes": None, "error": None}  # fmt: skip
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    facts["checked"] = current
    facts["exists"] = current == os.path.abspath(path)
    if not os.path.isdir(current):
        facts["error"] = "not a directory"
        return facts
    try:
        vfs = os.statvfs(current)
        facts["read_only"] = bool(vfs.f_flag & getattr(os, "ST_RDONLY", 1))
        facts["free_bytes"] = vfs.f_bavail * vfs.f_frsize
    except OSError as e:
        facts["error"] = e.strerror
    facts["writable"] = not facts["read_only"] and os.access(current, os.W_OK | os.X_OK)
    return facts


def _exists(lookup, name):
    """Whether pwd/grp knows name."""
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def account_facts(serial_group, user):
    """Whether the serial group and the service user exist, else whether the tools to create them do."""
    facts = {"serial_group": serial_group, "serial_group_exists": None, "groupadd": None,
             "user": user, "user_exists": None, "useradd": None}  # fmt: skip
    if serial_group:
        facts["serial_group_exists"] = _exists(grp.getgrnam, serial_group)
    if user:
        facts["user_exists"] = _exists(pwd.getpwnam, user)
        if not facts["user_exists"]:
            facts["useradd"] = _which("useradd") is not None
    if facts["serial_group_exists"] is False or facts["user_exists"] is False:
        facts["groupadd"] = _which("groupadd") is not None
    return facts


def device_facts(path, variable, serial_group):
    """Path form of a configured serial device and, when it is plugged in, its type, group and mode."""
    facts = {"path": path, "variable": variable, "form_error": None, "exists": False, "type": None,
             "group": None, "mode": None, "reachable": None}  # fmt: skip
    text = "" if path is None else str(path)
    if not text.startswith("/dev/"):
        facts["form_error"] = "not an absolute path under /dev/"
    elif os.path.normpath(text) != text:
        facts["form_error"] = "not a normalised path (no '..', '.', '//' or trailing '/')"
    if facts["form_error"]:
        return facts
    try:
        st = os.stat(text)  # follows /dev/serial/by-id/... links to the tty
    except OSError:
        return facts  # not plugged in now: a USB receiver may come later, the forwarder waits for it
    facts["exists"] = True
    facts["type"] = "char" if stat.S_ISCHR(st.st_mode) else ("directory" if stat.S_ISDIR(st.st_mode) else "other")
    facts["mode"] = "%04o" % stat.S_IMODE(st.st_mode)
    try:
        facts["group"] = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        facts["group"] = str(st.st_gid)
    if facts["type"] == "char":
        facts["reachable"] = facts["group"] == serial_group or (st.st_mode & 0o006) == 0o006
    return facts


def _python_problems(facts):
    py = facts.get("python")
    if not py:
        return []
    need = py.get("min_python") or MIN_PYTHON
    if py.get("error") == "missing":
        return ["no Python at %s on the gateway; install Python %s+ (%s) or set pointperfect_gateway_python"
                % (py["path"], need, SUPPORTED_RELEASES)]  # fmt: skip
    if py.get("version") is None:
        return ["Python at %s does not run (%s); repair it or set pointperfect_gateway_python"
                % (py["path"], py.get("error"))]  # fmt: skip
    if _version_tuple(py["version"]) < _version_tuple(need):
        return ["Python %s on the gateway; the forwarder needs %s+ (%s)"
                % (py["version"], need, SUPPORTED_RELEASES)]  # fmt: skip
    if py.get("missing_modules"):
        return ["Python %s at %s lacks the standard modules %s; install the full python3 package (apt-get install "
                "python3)" % (py["version"], py["path"], ", ".join(py["missing_modules"]))]  # fmt: skip
    return []


def _systemd_problems(facts):
    sd = facts.get("systemd")
    if sd and not sd.get("booted"):
        return ["PID 1 is %s, not systemd; the forwarder runs as a systemd service: boot the gateway with "
                "systemd (apt-get install systemd-sysv)" % (sd.get("pid1") or "unknown")]  # fmt: skip
    return []


def _writable_problems(facts):
    found = []
    for w in facts.get("writable") or []:
        where = w["path"] if w.get("exists") else "%s (checked at %s)" % (w["path"], w.get("checked"))
        if w.get("error") == "not a directory":
            found.append("%s is not a directory; remove it or choose another location" % where)
        elif w.get("read_only"):
            found.append("%s is on a read-only filesystem; remount it read-write or choose a writable location "
                         "(pointperfect_install_dir, pointperfect_config_dir)" % where)  # fmt: skip
        elif not w.get("writable"):
            found.append("%s is not writable (%s); run the role with become (root) or choose a writable location"
                         % (where, w.get("error") or "permission denied"))  # fmt: skip
    return found


def _account_problems(facts):
    acct = facts.get("account")
    found = []
    if not acct:
        return found
    if acct.get("serial_group_exists") is False and not acct.get("groupadd"):
        found.append("the serial group %s does not exist and groupadd is missing; create the group or set "
                     "pointperfect_serial_group to the group owning the receiver's tty"
                     % acct["serial_group"])  # fmt: skip
    if acct.get("user_exists") is False and not acct.get("useradd"):
        found.append("the service user %s does not exist and useradd is missing; install passwd (shadow "
                     "utilities) on the gateway" % acct["user"])  # fmt: skip
    return found


def _device_problems(facts):
    serial_group = (facts.get("account") or {}).get("serial_group")
    found = []
    for d in facts.get("devices") or []:
        name = d.get("variable") or "the serial device"
        if d.get("form_error"):
            found.append("%s %r is %s; set it to the receiver's tty, e.g. /dev/ttyACM0 or /dev/serial/by-id/..."
                         % (name, d["path"], d["form_error"]))  # fmt: skip
        elif d.get("exists") and d.get("type") != "char":
            found.append("%s %s is a %s, not a serial device; set it to the receiver's tty (ls -l /dev/serial/by-id/)"
                         % (name, d["path"], d["type"]))  # fmt: skip
        elif d.get("reachable") is False:
            found.append("%s %s belongs to group %s (mode %s), so the service user in %s cannot open it; set "
                         "pointperfect_serial_group: %s" % (name, d["path"], d["group"], d["mode"],
                                                            serial_group, d["group"]))  # fmt: skip
    return found


# Each check's name and the function giving its messages, in the order they are reported.
CHECKS = (
    ("python", _python_problems),
    ("systemd", _systemd_problems),
    ("writable", _writable_problems),
    ("account", _account_problems),
    ("device", _device_problems),
)


def problems(facts):
    """The problems the facts show: [{check, message}], each message one line naming the cause and the fix."""
    return [{"check": check, "message": message} for check, messages in CHECKS for message in messages(facts)]


def gather(spec=None):
    """Facts and problems for a preflight spec (the gateway_probe `preflight` option; None = the platform checks):
    python, min_python, systemd, writable (paths), serial_group, user, devices ([{path, variable}])."""
    spec = dict(PLATFORM_DEFAULTS if spec is None else spec)
    facts = {}
    if spec.get("python"):
        facts["python"] = python_facts(spec["python"])
        facts["python"]["min_python"] = str(spec.get("min_python") or MIN_PYTHON)
    if spec.get("systemd"):
        facts["systemd"] = systemd_facts()
    facts["writable"] = [writable_facts(p) for p in spec.get("writable") or []]
    if spec.get("serial_group") or spec.get("user"):
        facts["account"] = account_facts(spec.get("serial_group"), spec.get("user"))
    facts["devices"] = [
        device_facts(d.get("path"), d.get("variable"), spec.get("serial_group")) for d in spec.get("devices") or []
    ]
    facts["problems"] = problems(facts)
    return facts
