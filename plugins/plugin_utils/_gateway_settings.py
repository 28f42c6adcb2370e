# The gateway role's cross-field checks of its variables (what meta/argument_specs.yml cannot say: ranges, formats,
# one setting against another), one check per concern with its own one-line message. Used by the
# gateway_settings_errors filter in tasks/validate.yml: plain Python over the values, one templating of the inputs
# instead of one Jinja expression per concern (the no-op run's controller CPU, issue 16).
#
# A new check is one function `settings -> bool` and its message in CHECKS (and its bad values in the unit tests).

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!


import os
import re
from collections import namedtuple
from collections.abc import Mapping
from numbers import Number

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.gnss.pointperfect.plugins.module_utils._ztp_options import token_error

Check = namedtuple("Check", "name ok message")

REGION = re.compile(r"^(auto|[a-z]{2})$")
MEMORY_MAX = re.compile(r"^([1-9][0-9]*[KMGT]?|infinity)$")

# ReadWritePaths= of the unit is the output file's directory (output file only). It can never be / or a system
# directory: the path is absolute and clean (a space would split the directive, a newline would add one, and a ..
# segment could climb to /), its directory is not one of the broad directories below, and it is not inside a
# protected tree (the role's own config and install directories included: the service must not rewrite its config).
OUTPUT_PATH = re.compile(r"^(/(?![.][.]?(/|$))[A-Za-z0-9._@+-]+)+$")
# (paths compared with, never written: not a temporary-file use)
RW_TOO_BROAD = ("/", "/home", "/media", "/mnt", "/opt", "/run", "/srv", "/tmp", "/var", "/var/lib", "/var/tmp")  # noqa: S108
RW_PROTECTED = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root", "/sbin",
                "/sys", "/usr")  # fmt: skip


def output_dir_ok(path, *role_dirs):
    """Whether the directory of the output file `path` may become the unit's ReadWritePaths= (role_dirs: the role's
    config and install directories, protected too)."""
    if not isinstance(path, str) or len(path) > 255 or not OUTPUT_PATH.match(path):
        return False
    directory = os.path.dirname(path)
    protected = RW_PROTECTED + tuple(str(d).rstrip("/") for d in role_dirs if d and str(d).rstrip("/"))
    return directory not in RW_TOO_BROAD and not any(directory == p or directory.startswith(p + "/") for p in protected)


def as_int(value):
    """Jinja's `int` filter: an int, a numeric string or a float truncated; anything else 0."""
    if isinstance(value, bool):
        return int(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return 0


def as_bool(value):
    """Ansible's `bool` filter (yes/no, true/false, 1/0, on/off); anything else false."""
    try:
        return boolean(value, strict=False)
    except TypeError:
        return False


def is_list(value):
    return isinstance(value, (list, tuple))


def is_device(value):
    return isinstance(value, str) and value.startswith("/dev/")


def _position_ok(pos):
    if pos is None:
        return True
    if not isinstance(pos, Mapping):
        return False
    lat, lon = pos.get("lat"), pos.get("lon")
    return isinstance(lat, Number) and abs(lat) <= 90 and isinstance(lon, Number) and abs(lon) <= 180


def _ztp_ok(s):
    return (
        as_int(s["pointperfect_ztp_throttle"]) >= 0
        and as_int(s.get("pointperfect_ztp_renew_before_days") or 0) >= 0
        and as_int(s.get("pointperfect_ztp_refresh_after_days") or 0) >= 0
        and len(str(s["pointperfect_ztp_given_name"])) > 0
        and is_list(s["pointperfect_ztp_tags"])
    )


def _token_ok(s):
    return s["pointperfect_state"] != "present" or token_error(s["pointperfect_ztp_token"]) is None


def _input_ok(s):
    region, ca_file = s["pointperfect_region"], s["pointperfect_ca_file"] or ""
    return (
        (region is None or (isinstance(region, str) and REGION.match(region) is not None))
        and as_int(s["pointperfect_ntrip_gga_interval"]) > 0
        and (len(ca_file) == 0 or os.path.isfile(ca_file))
    )


def _position_settings_ok(s):
    return _position_ok(s["pointperfect_fixed_position"]) and _position_ok(s["pointperfect_ntrip_fixed_position"])


def _ntrip_tls_ok(s):
    return (
        as_bool(s["pointperfect_ntrip_tls"])
        or as_bool(s["pointperfect_ntrip_allow_plain_auth"])
        or s["pointperfect_input"] == "mqtt"
    )


def _lband_ok(s):
    device = s["pointperfect_lband_device"]
    return (
        (device is None or is_device(device))
        and (device is None or s["pointperfect_output_type"] != "serial" or device != s["pointperfect_serial_device"])
        and as_int(s["pointperfect_lband_baudrate"]) > 0
    )


def _output_ok(s):
    kind = s["pointperfect_output_type"]
    if kind == "serial" and not (
        is_device(s["pointperfect_serial_device"]) and as_int(s["pointperfect_serial_baudrate"]) > 0
    ):
        return False
    if kind == "tcp" and not (str(s["pointperfect_output_host"] or "") and as_int(s["pointperfect_output_port"]) > 0):
        return False
    if kind == "file" and not output_dir_ok(
        s["pointperfect_output_path"], s["pointperfect_config_dir"], s["pointperfect_install_dir"]
    ):
        return False
    return as_int(s["pointperfect_output_queue_bytes"]) > 0


def _service_ok(s):
    memory_max = s["pointperfect_systemd_memory_max"]
    return (
        0 <= as_int(s["pointperfect_metrics_port"]) <= 65535
        and as_int(s["pointperfect_watchdog_sec"]) >= 0
        and as_int(s["pointperfect_restart_sec"]) >= 0
        and as_int(s["pointperfect_health_timeout"]) >= 0
        and as_int(s["pointperfect_no_data_timeout"]) > 0
        and isinstance(memory_max, str)
        and MEMORY_MAX.match(memory_max) is not None
        and as_int(s["pointperfect_systemd_tasks_max"]) >= 1
        and isinstance(s["pointperfect_systemd_extra"], Mapping)
        and is_list(s["pointperfect_systemd_ip_address_allow"])
    )


CHECKS = (
    Check(
        "ZTP settings",
        _ztp_ok,
        lambda s: (
            "Invalid ZTP settings: pointperfect_ztp_throttle, pointperfect_ztp_renew_before_days and "
            "pointperfect_ztp_refresh_after_days must be non-negative integers, pointperfect_ztp_given_name non-empty "
            "and pointperfect_ztp_tags a list."
        ),
    ),
    # the ztp module's own rule and message; the token is needed only when the API is called (the module then names
    # a missing one), a set one is checked on every run before any change on the gateway; it is never quoted
    Check("ZTP token form", _token_ok, lambda s: token_error(s["pointperfect_ztp_token"])),
    Check(
        "input settings",
        _input_ok,
        lambda s: (
            "Invalid input settings: pointperfect_region must be auto or a region code (eu, us, kr, au, jp), "
            "pointperfect_ntrip_gga_interval a positive number of seconds, and pointperfect_ca_file (if set) an "
            'existing file on the controller (got "%s").' % (s["pointperfect_ca_file"] or "")
        ),
    ),
    Check(
        "fixed position",
        _position_settings_ok,
        lambda s: (
            "Invalid fixed position: pointperfect_fixed_position (and pointperfect_ntrip_fixed_position) must be null "
            "or a mapping {lat, lon, alt} in degrees (lat -90..90, lon -180..180) and metres."
        ),
    ),
    Check(
        "NTRIP TLS",
        _ntrip_tls_ok,
        lambda s: (
            "pointperfect_ntrip_tls is false: NTRIP sends the caster password with HTTP Basic auth, in clear text "
            "without TLS. Keep TLS (for a caster other than u-blox, set pointperfect_ntrip_port to its TLS port), or "
            "set pointperfect_ntrip_allow_plain_auth: true to accept that."
        ),
    ),
    Check(
        "L-band settings",
        _lband_ok,
        lambda s: (
            "Invalid L-band settings: pointperfect_lband_device must be null or a device path (/dev/...) other than "
            "pointperfect_serial_device, and pointperfect_lband_baudrate a positive integer."
        ),
    ),
    # output_dir_ok() is also what the unit template checks (gateway_output_dir_ok) before it writes ReadWritePaths=
    Check(
        "output settings",
        _output_ok,
        lambda s: (
            "Invalid output settings: serial needs pointperfect_serial_device (/dev/...) and "
            "pointperfect_serial_baudrate, tcp needs pointperfect_output_host and pointperfect_output_port, file needs "
            "an absolute pointperfect_output_path (letters, digits, . _ @ + - only, no . or .. segment) whose "
            "directory is not /, a top directory such as /var or /srv, nor inside /etc, /usr, /boot, /dev, /proc, "
            "/sys, /bin, /sbin, /lib*, /root or the role config and install directories (it becomes ReadWritePaths "
            "of the unit); pointperfect_output_queue_bytes must be positive."
        ),
    ),
    Check(
        "health and service settings",
        _service_ok,
        lambda s: (
            "Invalid health/service settings: pointperfect_metrics_port 0-65535 (0 disables the endpoint), "
            "pointperfect_watchdog_sec, pointperfect_restart_sec and pointperfect_health_timeout >= 0, "
            "pointperfect_no_data_timeout > 0, pointperfect_systemd_memory_max a size such as 128M (K, M, G, T) or "
            "infinity, pointperfect_systemd_tasks_max >= 1, pointperfect_systemd_extra a mapping and "
            "pointperfect_systemd_ip_address_allow a list."
        ),
    ),
)

# the settings every check reads (the role passes exactly these)
INPUTS = (
    "pointperfect_state",
    "pointperfect_ztp_token",
    "pointperfect_ztp_throttle",
    "pointperfect_ztp_renew_before_days",
    "pointperfect_ztp_refresh_after_days",
    "pointperfect_ztp_given_name",
    "pointperfect_ztp_tags",
    "pointperfect_region",
    "pointperfect_ntrip_gga_interval",
    "pointperfect_ca_file",
    "pointperfect_fixed_position",
    "pointperfect_ntrip_fixed_position",
    "pointperfect_ntrip_tls",
    "pointperfect_ntrip_allow_plain_auth",
    "pointperfect_input",
    "pointperfect_lband_device",
    "pointperfect_lband_baudrate",
    "pointperfect_output_type",
    "pointperfect_serial_device",
    "pointperfect_serial_baudrate",
    "pointperfect_output_host",
    "pointperfect_output_port",
    "pointperfect_output_queue_bytes",
    "pointperfect_output_path",
    "pointperfect_config_dir",
    "pointperfect_install_dir",
    "pointperfect_metrics_port",
    "pointperfect_watchdog_sec",
    "pointperfect_restart_sec",
    "pointperfect_health_timeout",
    "pointperfect_no_data_timeout",
    "pointperfect_systemd_memory_max",
    "pointperfect_systemd_tasks_max",
    "pointperfect_systemd_extra",
    "pointperfect_systemd_ip_address_allow",
)


def argument_spec_message(argument_errors, token=None):
    """The one line that names every failure of the role's argument specification (meta/argument_specs.yml, as
    Ansible's validate_argument_spec reports them), never the token; None when there is none."""
    if not argument_errors:
        return None
    text = "; ".join(" ".join(str(e).split()) for e in argument_errors)
    if token:
        text = text.replace(token, "********")
    return "Validation of the role's variables against its argument specification failed: " + text


def errors(settings, argument_errors=None):
    """The message of every check that fails, in CHECKS order (empty when all pass); only the argument
    specification's one line when it failed (a wrong type makes the rules moot). A missing input is a programming
    error of the caller (KeyError names it), not a user's mistake."""
    spec_failed = argument_spec_message(argument_errors, settings.get("pointperfect_ztp_token"))
    if spec_failed:
        return [spec_failed]
    missing = [name for name in INPUTS if name not in settings]
    if missing:
        raise KeyError("gateway settings without %s" % ", ".join(missing))
    return [check.message(settings) for check in CHECKS if not check.ok(settings)]
