"""ansible-doc on the installed collection: every filter shows its own page, ztp shows no internal data, and the
old gateway_status name leads to gateway_info."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE_DOC = Path(sys.executable).with_name("ansible-doc")
FILTERS = (
    "fleet_health",
    "fleet_report",
    "fleet_table",
    "fleet_html",
    "fleet_json",
    "app_specific_id",
    "ztp_token_error",
    "ztp_deployed",
)


def _doc(ansible_env, *args):
    proc = subprocess.run(
        [str(ANSIBLE_DOC), "--json", *args], env=ansible_env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def filter_docs(ansible_env):
    data = _doc(ansible_env, "-t", "filter", *(f"gnss.pointperfect.{name}" for name in FILTERS))
    return {name: data[f"gnss.pointperfect.{name}"] for name in FILTERS}


@pytest.mark.parametrize("name", FILTERS)
def test_every_filter_shows_its_own_page(filter_docs, name):
    doc = filter_docs[name]["doc"]
    assert doc["name"] == name
    assert doc["filename"].endswith(f"/plugins/filter/{name}.yml")
    assert f"gnss.pointperfect.{name}" in filter_docs[name]["examples"]


def test_filter_descriptions_are_distinct(filter_docs):
    descriptions = [filter_docs[name]["doc"]["short_description"] for name in FILTERS]
    assert len(set(descriptions)) == len(FILTERS), descriptions


def test_ztp_doc_shows_only_options(ansible_env):
    doc = _doc(ansible_env, "gnss.pointperfect.ztp")["gnss.pointperfect.ztp"]["doc"]
    assert "hardware_id" in doc["options"]
    assert [name for name in doc["options"] if name.startswith("_")] == []
    text = subprocess.run(
        [str(ANSIBLE_DOC), "gnss.pointperfect.ztp"], env=ansible_env, capture_output=True, text=True, check=True
    ).stdout
    for name in ("_state", "_certificate", "_private_key", "_credentials", "_remove", "Internal use"):
        assert name not in text


def test_gateway_info_and_its_old_name(ansible_env):
    listing = subprocess.run(
        [str(ANSIBLE_DOC), "-l", "gnss.pointperfect"], env=ansible_env, capture_output=True, text=True, check=True
    ).stdout
    assert "gnss.pointperfect.gateway_info" in listing and "gnss.pointperfect.gateway_status" not in listing
    old = _doc(ansible_env, "gnss.pointperfect.gateway_status")
    assert next(iter(old.values()))["doc"]["module"] == "gateway_info"
