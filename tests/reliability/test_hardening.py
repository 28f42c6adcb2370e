"""R3 on the host: TLS verification cannot be turned off by accident, in the ztp module or in the forwarder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pointperfect_sim.pki import PKI

from tests.reliability import lab as L
from tests.reliability.test_bad_input import TOKEN, _Server, _valid, pairs  # noqa: F401 - fixture

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
