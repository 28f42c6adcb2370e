"""Unit tests of gateway_probe: the machine id's app-specific id, the account and config directory (read and compared
by module_utils/_account, tested there), the unit and build marker, the preflight, every key present, and the
documentation in sync."""

import grp
import hashlib
import hmac
import os
import pwd

import pytest
import yaml
from ansible_collections.gnss.pointperfect.plugins.module_utils import _account
from ansible_collections.gnss.pointperfect.plugins.modules import gateway_probe as module

APP_ID = "c9f4d130385c5b1ea446272ce2bc630f"
MACHINE_ID = "0123456789abcdef0123456789abcdef"
ME = pwd.getpwuid(os.getuid())
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def _expected(machine_id):
    digest = bytearray(hmac.new(bytes.fromhex(machine_id), bytes.fromhex(APP_ID), hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest.hex()


def params(**kw):
    base = dict(machine_id=False, account=None, config_dir=None, unit=None, build_marker=None, preflight=None,
                service=None, credentials=None, files=[])  # fmt: skip
    return dict(base, **kw)


# What /etc/machine-id holds (None: no file) and the app-specific id the probe derives (None: nothing).
MACHINE_IDS = {
    "machine_id": (MACHINE_ID + "\n", _expected(MACHINE_ID)),
    "machine_id_upper": (MACHINE_ID.upper(), _expected(MACHINE_ID)),  # systemd reads either case: the same id
    "uninitialized": ("uninitialized\n", None),
    "zeros": ("0" * 32 + "\n", None),
    "missing": (None, None),
}


@pytest.mark.parametrize("name", list(MACHINE_IDS))
def test_app_specific_id_of_the_machine_id(tmp_path, name):
    content, expected = MACHINE_IDS[name]
    path = tmp_path / "machine-id"
    if content is not None:
        path.write_text(content)
    got = module.app_specific_id(str(path))
    assert got == expected
    assert got is None or (MACHINE_ID not in got and len(got) == 32)  # never the machine id itself


def test_nothing_asked_returns_every_key_empty():
    assert module.probe(params()) == {
        "app_specific_id": None,
        "default_mac": None,
        "account": None,
        "config_dir": None,
        "unit": None,
        "build_marker": None,
        "service": None,
        "credentials": None,
        "files": {},
        "preflight": {},
    }


ROUTE_HEADER = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"


@pytest.mark.parametrize(
    ("ran", "routes", "address", "expected"),
    [
        # `ip -4 route get 8.8.8.8` names the device, as Ansible's setup parses it
        ((0, "8.8.8.8 via 10.0.0.1 dev eth0 src 10.0.0.5 uid 0\n    cache\n", ""), "", "52:54:00:12:34:56\n",
         "52:54:00:12:34:56"),
        ((2, "", "RTNETLINK answers: Network is unreachable"), "", "52:54:00:12:34:56\n", None),  # no default route
        ((0, "8.8.8.8 dev eth0 src 10.0.0.5\n", ""), "", "00:00:00:00:00:00\n", None),  # no MAC (all zeros)
        ((0, "8.8.8.8 dev ../x src 10.0.0.5\n", ""), "", "52:54:00:12:34:56\n", None),  # never a path out of net
        # no `ip`: the up default route with the lowest metric
        (None, "eth1\t00000000\t0100000A\t0003\t0\t0\t200\t00000000\t0\t0\t0\n"
               "eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
               "eth2\t00000000\t0100000A\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"
               "eth3\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n", "52:54:00:12:34:56\n",
         "52:54:00:12:34:56"),
        (None, "", "52:54:00:12:34:56\n", None),
    ],
)  # fmt: skip
def test_default_mac(tmp_path, ran, routes, address, expected):
    """The MAC of the default IPv4 interface (setup's default_ipv4.macaddress), read by the probe itself."""
    (tmp_path / "net" / "eth0").mkdir(parents=True)
    (tmp_path / "net" / "eth0" / "address").write_text(address)
    (tmp_path / "route").write_text(ROUTE_HEADER + routes)
    calls = []

    def run_command(argv):
        calls.append(argv)
        return ran

    assert module.default_mac(run_command, str(tmp_path / "net"), str(tmp_path / "route")) == expected
    assert calls == [["ip", "-4", "route", "get", "8.8.8.8"]]


def test_account_is_the_shared_read_and_compare():
    wanted = {"user": ME.pw_name, "group": MY_GROUP, "serial_group": None, "home": ME.pw_dir, "shell": ME.pw_shell}
    got = module.probe(params(account=wanted))["account"]
    assert got == _account.account(wanted) and got["as_wanted"] is True
    assert set(got) == {"user", "group", "serial_group", "as_wanted"}


def test_config_dir_unit_and_build_marker(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    os.chmod(conf, 0o750)
    unit = tmp_path / "x.service"
    marker = tmp_path / ".build"
    got = module.probe(params(config_dir=str(conf), unit=str(unit), build_marker=str(marker)))
    me = pwd.getpwuid(os.getuid()).pw_name
    assert got["config_dir"] == {"type": "directory", "mode": "0750", "owner": me, "group": MY_GROUP}
    assert got["unit"] == {"path": str(unit), "exists": False} and got["build_marker"] is None
    unit.write_text("[Unit]\n")
    marker.write_text("0.1.0-abc")
    got = module.probe(params(config_dir=str(tmp_path / "none"), unit=str(unit), build_marker=str(marker)))
    assert got["config_dir"] is None and got["unit"]["exists"] is True and got["build_marker"] == "0.1.0-abc"
    unit.unlink()
    unit.symlink_to("/dev/null")  # a masked unit is no installed unit
    assert module.probe(params(unit=str(unit)))["unit"]["exists"] is False


def test_preflight_is_gathered_with_its_defaults(tmp_path):
    spec = {"python": None, "min_python": "3.10", "systemd": False, "writable": [str(tmp_path)], "serial_group": None,
            "user": None, "devices": [{"path": "dev/ttyACM0", "variable": "pointperfect_serial_device"}]}  # fmt: skip
    got = module.probe(params(preflight=spec))["preflight"]
    assert [p["check"] for p in got["problems"]] == ["device"]
    assert "pointperfect_serial_device" in got["problems"][0]["message"]


def test_documentation_matches_argument_spec():
    doc = yaml.safe_load(module.DOCUMENTATION)["options"]
    assert set(doc) == set(module.ARGUMENT_SPEC)
    for name, opt in module.ARGUMENT_SPEC.items():
        assert doc[name]["type"] == opt["type"], name
        assert set(doc[name].get("suboptions", {})) == set(opt.get("options", {})), name
    returned = yaml.safe_load(module.RETURN)
    # hardware_id is the action plugin's (derived on the controller from what the module returns)
    assert set(returned) == {*module.probe(params()), "hardware_id"}
    assert "O(hardware_id)" in returned["hardware_id"]["returned"]


def test_read_follows_a_link_but_not_to_a_fifo(tmp_path):
    real = tmp_path / "machine-id"
    real.write_text("abc\n")
    (tmp_path / "link").symlink_to(real)
    assert module.read_small(str(tmp_path / "link")) == "abc\n"
    os.mkfifo(tmp_path / "fifo")
    assert module.read_small(str(tmp_path / "fifo")) is None


def test_files_are_hashed_never_returned(tmp_path):
    """Each deployed file: its SHA-256, type, mode and owner; a link is not read through; a missing file is null."""
    conf = tmp_path / "forwarder.json"
    conf.write_bytes(b'{"secret": "do-not-return"}\n')
    conf.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(conf)
    got = module.probe(params(files=[str(conf), str(link), str(tmp_path / "none")]))["files"]
    assert got[str(conf)] == {
        "type": "file",
        "sha256": hashlib.sha256(b'{"secret": "do-not-return"}\n').hexdigest(),
        "mode": "0640",
        "owner": ME.pw_name,
        "group": MY_GROUP,
    }
    assert got[str(link)]["type"] == "link" and got[str(link)]["sha256"] is None
    assert got[str(tmp_path / "none")] is None
    assert "do-not-return" not in repr(got)


@pytest.mark.parametrize(
    ("ran", "expected"),
    [
        ((0, "LoadState=loaded\nUnitFileState=enabled\nActiveState=active\n", ""), ("loaded", "enabled", "active")),
        ((0, "LoadState=not-found\nUnitFileState=\nActiveState=inactive\n", ""), ("not-found", None, "inactive")),
        ((1, "", "Failed to connect to bus"), (None, None, None)),
        (None, (None, None, None)),  # no systemctl
    ],
)
def test_service_state(ran, expected):
    calls = []

    def run_command(argv):
        calls.append(argv)
        return ran

    got = module.probe(params(service="pointperfect-forwarder"), run_command)["service"]
    assert (got["load_state"], got["unit_file_state"], got["active_state"]) == expected
    assert got["name"] == "pointperfect-forwarder"
    assert calls == [["systemctl", "show", "--property=LoadState,UnitFileState,ActiveState", "--",
                      "pointperfect-forwarder"]]  # fmt: skip


def test_credentials_state_is_the_ztp_read_with_what_it_was_read_for(tmp_path):
    """The probe's credentials state is the ztp module's own read (same code), plus read_for and ids_known; an
    owner or group that does not exist yet makes ids_known false (the ztp task then reads again)."""
    from ansible_collections.gnss.pointperfect.plugins.modules import ztp  # noqa: PLC0415

    wanted = {"dest": str(tmp_path), "owner": ME.pw_name, "group": MY_GROUP, "mode": "0640"}
    got = module.probe(params(credentials=wanted))["credentials"]
    assert got["read_for"] == wanted and got["ids_known"] is True
    expected = ztp.read_state(str(tmp_path), 0o640, ME.pw_uid, os.getgid())
    assert {k: v for k, v in got.items() if k not in ("read_for", "ids_known", "now")} == {
        k: v for k, v in expected.items() if k != "now"
    }
    missing = module.probe(params(credentials=dict(wanted, group="no-such-group-pp", mode=0o600)))["credentials"]
    assert missing["ids_known"] is False and missing["read_for"]["mode"] == "0600"
