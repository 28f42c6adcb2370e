"""The forwarder's memory footprint (issue 16): what a configuration does not use is not imported, and the small
encoders that replaced pyubx2 and pynmeagps at run time give the libraries' own results (across `receiver`, `valset`,
`keys`, `framing` and `app`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pointperfect_forwarder.framing import ubx_frame
from pointperfect_forwarder.receiver import fixed_gga, gga_position
from pointperfect_forwarder.valset import CFG_KEYS, cfg_valset
from pynmeagps import NMEAReader
from pyubx2 import UBXMessage
from pyubx2.ubxtypes_configdb import UBX_CONFIG_DATABASE


def test_cfg_key_ids_are_pyubx2s():
    assert {name: UBX_CONFIG_DATABASE[name][0] for name in CFG_KEYS} == CFG_KEYS


def test_cfg_valset_is_pyubx2s():
    items = [("CFG_PMP_CENTER_FREQUENCY", 1556290000), ("CFG_PMP_UNIQUE_WORD", 0xE15AE893E15AE893)]
    items += [("CFG_PMP_SEARCH_WINDOW", 2200), ("CFG_SPARTN_USE_SOURCE", 1), ("CFG_UART2INPROT_SPARTN", 1)]
    assert cfg_valset(items) == UBXMessage.config_set(1, 0, items).serialize()
    assert ubx_frame(0x02, 0x36) == UBXMessage("RXM", "RXM-SPARTN-KEY", 2).serialize()  # POLL


@pytest.mark.parametrize(
    "sentence",
    [
        b"$GPGGA,092725.00,4717.11399,N,00833.91590,E,1,08,1.01,499.6,M,48.0,M,,*5B\r\n",
        b"$GNGGA,120000.00,3351.1234,S,15112.9876,E,4,12,0.8,10.0,M,20.0,M,1.0,0000*70\r\n",
        b"$GPGGA,120000.00,0130.5000,N,07730.2500,W,2,07,1.5,5.0,M,0.0,M,,*49\r\n",
        b"$GPGGA,120000.00,,,,,0,00,99.99,,,,,,*62\r\n",  # no fix
        b"$GPGGA,120000.00,4717.11399,N,00833.91590,E,0,08,1.01,499.6,M,48.0,M,,*5A\r\n",  # quality 0
    ],
)
def test_gga_position_is_pynmeagps_reading(sentence):
    msg = NMEAReader.parse(sentence, validate=0)
    want = (float(msg.lat), float(msg.lon)) if int(msg.quality or 0) > 0 and msg.lat != "" else None
    assert gga_position(sentence) == want


def test_fixed_gga_reads_back():
    assert gga_position(fixed_gga({"lat": -33.5, "lon": 151.25, "alt": 10})) == pytest.approx((-33.5, 151.25))


def _imported(code: str) -> set[str]:
    probe = code + "; import sys, json; print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


def test_running_code_imports_neither_pyubx2_nor_pynmeagps_and_ntrip_no_paho():
    ntrip = _imported("import pointperfect_forwarder.cli, pointperfect_forwarder.app as a; a._input_class('ntrip')")
    assert not ntrip & {"pyubx2", "pynmeagps", "pyrtcm", "paho"}, ntrip & {"pyubx2", "pynmeagps", "pyrtcm", "paho"}
    mqtt = _imported("import pointperfect_forwarder.cli, pointperfect_forwarder.app as a; a._input_class('mqtt')")
    assert "paho" in mqtt and not mqtt & {"pyubx2", "pynmeagps", "pyrtcm"}
