"""Unit tests of the gateway role's cross-field checks (plugin_utils/_gateway_settings.py, the
gateway_settings_errors filter): the role's defaults pass, each bad value fails exactly its own concern, with one
line that never quotes the token, and the Jinja semantics the checks had (int, bool, number) hold."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.gnss.pointperfect.plugins.filter.gateway_settings_errors import gateway_settings_errors
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _gateway_settings as gs

TOKEN = "3c1a7f52-6b0e-4c2d-9f41-7a5e00000a01"

# the role's defaults (defaults/main.yml) with a well-formed token
GOOD = {
    "pointperfect_state": "present",
    "pointperfect_ztp_token": TOKEN,
    "pointperfect_ztp_throttle": 5,
    "pointperfect_ztp_renew_before_days": None,
    "pointperfect_ztp_refresh_after_days": None,
    "pointperfect_ztp_given_name": "gw-01",
    "pointperfect_ztp_tags": [],
    "pointperfect_region": "auto",
    "pointperfect_ntrip_gga_interval": 10,
    "pointperfect_ca_file": "",
    "pointperfect_fixed_position": None,
    "pointperfect_ntrip_fixed_position": None,
    "pointperfect_ntrip_tls": True,
    "pointperfect_ntrip_allow_plain_auth": False,
    "pointperfect_input": "auto",
    "pointperfect_lband_device": None,
    "pointperfect_lband_baudrate": 38400,
    "pointperfect_output_type": "serial",
    "pointperfect_serial_device": "/dev/ttyACM0",
    "pointperfect_serial_baudrate": 38400,
    "pointperfect_output_host": None,
    "pointperfect_output_port": 0,
    "pointperfect_output_queue_bytes": 1048576,
    "pointperfect_output_path": None,
    "pointperfect_config_dir": "/etc/pointperfect",
    "pointperfect_install_dir": "/opt/pointperfect",
    "pointperfect_metrics_port": 9101,
    "pointperfect_watchdog_sec": 60,
    "pointperfect_restart_sec": 5,
    "pointperfect_health_timeout": 60,
    "pointperfect_no_data_timeout": 120,
    "pointperfect_systemd_memory_max": "128M",
    "pointperfect_systemd_tasks_max": 32,
    "pointperfect_systemd_extra": {},
    "pointperfect_systemd_ip_address_allow": [],
}

# (bad values, the concern they break)
BAD = [
    ({"pointperfect_ztp_throttle": -1}, "ZTP settings"),
    ({"pointperfect_ztp_renew_before_days": -3}, "ZTP settings"),
    ({"pointperfect_ztp_refresh_after_days": "-1"}, "ZTP settings"),
    ({"pointperfect_ztp_given_name": ""}, "ZTP settings"),
    ({"pointperfect_ztp_tags": "a,b"}, "ZTP settings"),
    ({"pointperfect_ztp_token": " " + TOKEN.upper()}, "ZTP token form"),
    ({"pointperfect_region": "Europe"}, "input settings"),
    ({"pointperfect_region": 7}, "input settings"),
    ({"pointperfect_ntrip_gga_interval": 0}, "input settings"),
    ({"pointperfect_ca_file": "/nonexistent/ca.pem"}, "input settings"),
    ({"pointperfect_fixed_position": {"lat": 100, "lon": 0}}, "fixed position"),
    ({"pointperfect_fixed_position": {"lat": "52", "lon": 0}}, "fixed position"),
    ({"pointperfect_ntrip_fixed_position": {"lat": 0}}, "fixed position"),
    ({"pointperfect_ntrip_fixed_position": [1, 2]}, "fixed position"),
    ({"pointperfect_ntrip_tls": False, "pointperfect_input": "ntrip"}, "NTRIP TLS"),
    ({"pointperfect_ntrip_tls": "no", "pointperfect_input": "auto"}, "NTRIP TLS"),
    ({"pointperfect_lband_device": "ttyACM1"}, "L-band settings"),
    ({"pointperfect_lband_device": "/dev/ttyACM0"}, "L-band settings"),
    ({"pointperfect_lband_baudrate": 0}, "L-band settings"),
    ({"pointperfect_serial_device": "ttyACM0"}, "output settings"),
    ({"pointperfect_serial_baudrate": 0}, "output settings"),
    ({"pointperfect_output_type": "tcp", "pointperfect_output_port": 2101}, "output settings"),
    ({"pointperfect_output_type": "tcp", "pointperfect_output_host": "rx.local"}, "output settings"),
    ({"pointperfect_output_type": "file"}, "output settings"),  # no path
    ({"pointperfect_output_type": "file", "pointperfect_output_path": "/var/out.spartn"}, "output settings"),
    ({"pointperfect_output_type": "file", "pointperfect_output_path": "/etc/pp/out"}, "output settings"),
    ({"pointperfect_output_queue_bytes": 0}, "output settings"),
    ({"pointperfect_metrics_port": 70000}, "health and service settings"),
    ({"pointperfect_metrics_port": -1}, "health and service settings"),
    ({"pointperfect_watchdog_sec": -1}, "health and service settings"),
    ({"pointperfect_restart_sec": -1}, "health and service settings"),
    ({"pointperfect_health_timeout": -1}, "health and service settings"),
    ({"pointperfect_no_data_timeout": 0}, "health and service settings"),
    ({"pointperfect_systemd_memory_max": "lots"}, "health and service settings"),
    ({"pointperfect_systemd_memory_max": "0"}, "health and service settings"),
    ({"pointperfect_systemd_memory_max": 128}, "health and service settings"),
    ({"pointperfect_systemd_tasks_max": 0}, "health and service settings"),
    ({"pointperfect_systemd_extra": "a=b"}, "health and service settings"),
    ({"pointperfect_systemd_ip_address_allow": "10.0.0.0/8"}, "health and service settings"),
]

# values that pass although they look odd: the same as the Jinja checks had
ALSO_GOOD = [
    {"pointperfect_region": None},
    {"pointperfect_region": "eu"},
    {"pointperfect_ztp_throttle": "3"},  # a string of digits (Jinja's int)
    {"pointperfect_ztp_token": ""},  # unset: needed only when the API is called, where the module names it
    {"pointperfect_state": "absent", "pointperfect_ztp_token": "not a token"},  # removal needs no token
    {"pointperfect_fixed_position": {"lat": -90, "lon": 180.0, "alt": 3}},
    {"pointperfect_ntrip_tls": False, "pointperfect_ntrip_allow_plain_auth": True, "pointperfect_input": "ntrip"},
    {"pointperfect_ntrip_tls": False, "pointperfect_input": "mqtt"},
    {"pointperfect_lband_device": "/dev/ttyACM1"},
    {
        "pointperfect_lband_device": "/dev/ttyACM0",
        "pointperfect_output_type": "tcp",
        "pointperfect_output_host": "h",
        "pointperfect_output_port": 2101,
    },
    {
        "pointperfect_output_type": "file",
        "pointperfect_output_path": "/var/lib/pp/o",
        "pointperfect_serial_device": None,
    },
    {"pointperfect_metrics_port": 0, "pointperfect_watchdog_sec": 0, "pointperfect_health_timeout": 0},
    {"pointperfect_systemd_memory_max": "infinity"},
    {"pointperfect_systemd_memory_max": "2G"},
]


def test_the_defaults_pass():
    assert gateway_settings_errors(GOOD) == []


@pytest.mark.parametrize(("bad", "concern"), BAD)
def test_each_bad_value_fails_its_own_concern_in_one_line(bad, concern):
    got = gateway_settings_errors(dict(GOOD, **bad))
    want = [check for check in gs.CHECKS if check.name == concern]
    assert len(want) == 1 and got == [want[0].message(dict(GOOD, **bad))], (bad, got)
    assert got[0] and "\n" not in got[0] and "  " not in got[0] and got[0] == got[0].strip()
    assert TOKEN not in got[0] and TOKEN.upper() not in got[0]


@pytest.mark.parametrize("odd", ALSO_GOOD)
def test_values_the_jinja_checks_accepted_still_pass(odd):
    assert gateway_settings_errors(dict(GOOD, **odd)) == []


def test_every_failing_concern_is_named_in_order(tmp_path):
    bad = {}
    for values, _concern in BAD:
        bad.update(values)
    got = gateway_settings_errors(dict(GOOD, **bad))
    assert len(got) == len(gs.CHECKS)
    assert 'got "/nonexistent/ca.pem"' in got[2]


def test_an_existing_ca_file_passes(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert gateway_settings_errors(dict(GOOD, pointperfect_ca_file=str(ca))) == []
    assert len(gateway_settings_errors(dict(GOOD, pointperfect_ca_file=str(tmp_path)))) == 1  # a directory


@pytest.mark.parametrize(
    ("value", "want"), [(5, 5), ("7", 7), ("2.9", 2), (3.7, 3), (None, 0), ("x", 0), (True, 1), ([], 0)]
)
def test_as_int_is_jinjas_int(value, want):
    assert gs.as_int(value) == want


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/var/lib/pointperfect/corrections.spartn", True),
        ("/srv/gnss/out.spartn", True),
        ("/data/x", True),
        ("/var/lib/x", False),  # its directory is a broad one
        ("/x", False),
        ("/etc/pointperfect/out", False),
        ("/etc2/out", True),  # a prefix of a name is not the directory
        ("/opt/pointperfect/out", False),  # the role's install directory
        ("/opt/pointperfect2/out", True),
        ("/usr/local/x/out", False),
        ("/var/lib/../../etc/x", False),
        ("/var/lib/pp/./x", False),
        ("var/lib/pp/x", False),
        ("/var/lib/pp/a b", False),
        ("/var/lib/pp/a\nb", False),
        ("/var/lib/pp/" + "x" * 250, False),
        (None, False),
        (7, False),
    ],
)
def test_output_dir_rule(path, ok):
    assert gs.output_dir_ok(path, "/etc/pointperfect", "/opt/pointperfect/") is ok


def test_a_missing_input_is_the_callers_error():
    settings = dict(GOOD)
    del settings["pointperfect_output_port"]
    with pytest.raises(AnsibleFilterError, match="pointperfect_output_port"):
        gateway_settings_errors(settings)
    with pytest.raises(AnsibleFilterError, match="mapping"):
        gateway_settings_errors(["pointperfect_state"])


def test_the_inputs_are_what_the_role_passes():
    """vars/main.yml's __pointperfect_settings (what validate.yml passes) is exactly INPUTS (a new check's input must
    be added there too); the probe's task has its action read INPUTS from the task's variables."""
    role = Path(__file__).resolve().parents[4] / "roles" / "gateway"
    settings = yaml.safe_load((role / "vars" / "main.yml").read_text())["__pointperfect_settings"]
    assert sorted(settings) == sorted(gs.INPUTS)
    assert all(name in value or name == "pointperfect_ztp_token" for name, value in settings.items())
    assert "__pointperfect_settings" in (role / "tasks" / "validate.yml").read_text()
    assert "check_role_variables: true" in (role / "tasks" / "preflight.yml").read_text()


def test_argument_specification_failures_are_one_line_first_and_never_the_token():
    """The argument specification's failures (validate_argument_spec's argument_errors) come as one line instead of
    the rules' messages (a wrong type makes them moot), the token masked even if a message quoted it."""
    bad = dict(GOOD, pointperfect_ztp_throttle=-1)
    assert gs.errors(bad) and gs.errors(bad, []) == gs.errors(bad)
    got = gateway_settings_errors(bad, ["value of pointperfect_input must be\n one of: a, b", f"x {TOKEN} y"])
    assert len(got) == 1 and "\n" not in got[0] and TOKEN not in got[0], got
    assert got[0].startswith("Validation of the role's variables against its argument specification failed: ")
    assert "pointperfect_input must be one of: a, b; x ******** y" in got[0]
