"""R3 on the host: TLS verification cannot be turned off by accident, in the ztp module or in the forwarder; the
unit the role renders keeps its sandbox (PrivateIPC, MemoryMax, TasksMax, a ReadWritePaths that is never / or a
system directory) and `systemd-analyze security --offline` rates it at most 1.3."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pointperfect_sim.pki import PKI

from tests.reliability import suite as L
from tests.reliability.test_bad_input import TOKEN, _Server, _valid, pairs  # noqa: F401 - fixture
from tests.role_play import failed_checks, render_templates

FORWARDER_SRC = L.REPO / "forwarder" / "src" / "pointperfect_forwarder"
INSECURE = re.compile(
    r"CERT_NONE|check_hostname\s*=\s*False|tls_insecure_set\(\s*True|verify\s*=\s*False|"
    r"_create_unverified_context"
)


def test_forwarder_source_has_no_tls_off_switch():
    hits = [
        f"{p.name}:{i}"
        for p in FORWARDER_SRC.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if INSECURE.search(line)
    ]
    assert hits == []


@pytest.mark.parametrize(
    "field",
    [{"tls_verify": False}, {"mqtt": {"insecure": True}}, {"ntrip": {"verify": False}}, {"validate_certs": False}],
)
def test_forwarder_refuses_any_verification_switch(tmp_path, broker, field):
    creds = L.credentials(tmp_path / "etc", broker=broker, keys=L.lab_keys())
    cfg = L.forwarder_config(tmp_path, creds, **field)
    res = subprocess.run(
        [sys.executable, "-m", "pointperfect_forwarder", "-c", str(cfg), "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(L.SRC)},
    )
    assert res.returncode == 2 and "unknown field" in res.stderr, res.stderr


@pytest.mark.lab
def test_forwarder_with_the_wrong_ca_never_connects(tmp_path, broker, receiver, daemons):
    other = PKI(tmp_path / "other-pki")  # a CA that did not sign the broker
    creds = L.credentials(tmp_path / "etc", broker=broker, keys=L.lab_keys())
    cfg = L.forwarder_config(
        tmp_path,
        creds,
        ca_file=str(other.ca_path),
        backoff={"max": 2},
        output={"type": "serial", "device": receiver.device_path, "baudrate": 115200},
    )
    fwd = daemons(cfg)
    st = fwd.wait_status(lambda s: s["input"]["reconnects"] >= 2)
    assert "TLS error" in (st["input"]["last_error"] or ""), st["input"]
    assert st["input"]["connected_since"] is None and st["healthy"] is False
    assert "certificate verify failed" in fwd.log().lower() or "TLS error" in fwd.log()


def test_ztp_validate_certs_false_is_loud(pki, pairs, ansible_env, tmp_path):  # noqa: F811 - fixture
    with _Server(pki, {"seed": json.dumps(_valid(pairs)).encode()}) as srv:
        play = tmp_path / "insecure.yml"
        play.write_text(
            json.dumps(
                [
                    {
                        "hosts": "all",
                        "gather_facts": False,
                        "tasks": [
                            {
                                "gnss.pointperfect.ztp": {
                                    "token": TOKEN,
                                    "hardware_id": "rel-insecure",
                                    "dest": str(tmp_path / "d"),
                                    "api_url": srv.url("case/seed"),
                                    "validate_certs": False,
                                    "retries": 0,
                                }
                            }
                        ],
                    }
                ]
            )
        )
        res = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                "localhost,",
                "-c",
                "local",
                "-e",
                f"ansible_python_interpreter={sys.executable}",
                str(play),
            ],
            env=ansible_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    assert re.search(r"\[WARNING\].*(validate_certs|TLS verification|not verified)", out, re.S), out[-2000:]


# ---------------------------------------------------------------- the unit: sandbox, resources, ReadWritePaths

UNIT_SCENARIOS = {
    "serial": {},
    "file": {"pointperfect_output_type": "file", "pointperfect_output_path": "/var/lib/pointperfect/out.ubx"},
    "sized": {"pointperfect_systemd_memory_max": "256M", "pointperfect_systemd_tasks_max": 64},
}
GOOD_PATHS = ["/var/lib/pointperfect/out.ubx", "/srv/gnss/out.ubx", "/data/rtcm.bin", "/opt/other/x"]
BAD_PATHS = [
    "/out.ubx",  # /
    "/etc/out.ubx",  # /etc
    "/etc/pointperfect/out.ubx",  # inside /etc, and the config directory
    "/etc/default/out.ubx",
    "/usr/local/out.ubx",
    "/var/out.ubx",  # a whole top directory
    "/srv/out.ubx",
    "/opt/pointperfect/forwarder/out.ubx",  # the install directory
    "/srv/a/../../out.ubx",  # climbs to /
    "/srv/gnss/./out.ubx",
    "/srv//gnss/out.ubx",
    "/srv/my dir/out.ubx",  # a space splits the directive
    "/srv/gnss/x\nExecStartPre=/bin/sh",  # a newline adds one
    "srv/gnss/out.ubx",
    "/srv/gnss/",
]


# What the rendering needs beyond the role's defaults: a state, a hardware id and the plan ZTP returned.
PLAY_VARS = {
    "pointperfect_state": "present",
    "__pointperfect_hardware_id": "pp-0123",
    "__pointperfect_ztp": {"service": "mqtt", "plan": "ip"},
}


def _checks(ansible_env, collections_path, tmp_path, cases, show=""):
    """The failed checks of tasks/validate.yml per case (plus the value of `show`)."""
    return failed_checks(ansible_env, collections_path, tmp_path, "validate.yml", cases, variables=PLAY_VARS, show=show)


@pytest.fixture(scope="module")
def units(ansible_env, collections_path, tmp_path_factory):
    """The unit as the role renders it (the installed collection's template and variables), per scenario."""
    out = tmp_path_factory.mktemp("units")
    template = "pointperfect-forwarder.service.j2"
    return render_templates(ansible_env, collections_path, out, template, UNIT_SCENARIOS, variables=PLAY_VARS)


def _directives(path):
    return [line.strip() for line in path.read_text().splitlines() if "=" in line and not line.startswith("#")]


def test_unit_private_ipc_and_resource_caps(units):
    serial = _directives(units["serial"])
    # defaults sized from the measured RSS (about 30 MB, docs/benchmarks.md) and about six threads
    for line in ("PrivateIPC=yes", "MemoryMax=128M", "TasksMax=32", "RemoveIPC=yes", "ProtectSystem=strict"):
        assert line in serial, (line, serial)
    sized = _directives(units["sized"])
    assert "MemoryMax=256M" in sized and "TasksMax=64" in sized


def test_unit_read_write_paths_only_for_a_file_output(units):
    assert [d for d in _directives(units["serial"]) if d.startswith("ReadWritePaths")] == []
    assert [d for d in _directives(units["file"]) if d.startswith("ReadWritePaths")] == [
        "ReadWritePaths=/var/lib/pointperfect"
    ]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
@pytest.mark.parametrize("name", list(UNIT_SCENARIOS))
def test_unit_security_exposure_offline(units, name):
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(units[name])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout)
    assert m, proc.stdout[-2000:] + proc.stderr[-2000:]
    exposure = float(m.group(1))
    L.record(f"unit_security_offline_{name}", exposure=exposure)
    assert exposure <= 1.3, proc.stdout[-3000:]


def test_read_write_paths_is_never_root_or_a_system_directory(ansible_env, collections_path, tmp_path):
    """pointperfect_output_path feeds ReadWritePaths= (its directory): the role refuses, before any change, a path
    whose directory is /, a whole top directory, inside /etc, /usr and the like or the role's own directories, or a
    path that could climb, split or add a directive; the template renders no ReadWritePaths for it either."""
    cases = GOOD_PATHS + BAD_PATHS
    got = _checks(
        ansible_env,
        collections_path,
        tmp_path,
        {
            f"p{i}": {"pointperfect_output_type": "file", "pointperfect_output_path": path}
            for i, path in enumerate(cases)
        },
        show="__pointperfect_output_dir_ok | bool",
    )
    for i, path in enumerate(cases):
        *errors, ok = got[f"p{i}"]
        output_errors = [e for e in errors if e.startswith("Invalid output settings")]
        if path in GOOD_PATHS:
            assert ok is True and output_errors == [], (path, got[f"p{i}"])
        else:
            assert ok is False and len(output_errors) == 1, (path, got[f"p{i}"])
            assert "ReadWritePaths" in output_errors[0] and "\n" not in output_errors[0]


@pytest.mark.parametrize(
    "bad",
    [
        {"pointperfect_systemd_memory_max": "lots"},
        {"pointperfect_systemd_memory_max": "0"},
        {"pointperfect_systemd_tasks_max": 0},
    ],
)
def test_bad_resource_caps_are_refused(ansible_env, collections_path, tmp_path, bad):
    errors = _checks(ansible_env, collections_path, tmp_path, {"bad": bad})["bad"]
    assert [e for e in errors if "pointperfect_systemd_memory_max" in e and "pointperfect_systemd_tasks_max" in e], (
        errors
    )
