"""The app_specific_id filter is systemd's sd_id128_get_machine_app_specific(): systemd's own test vector, the
systemd-id128 command on this machine, and bad input refused without echoing it."""

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.gnss.pointperfect.plugins.filter import app_specific_id as f

ZTP_HARDWARE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # the ztp module's bounds


def test_app_id_is_uuid5_of_the_collection_name():
    # changing it would change every derived hardware id, so every Thingstream device
    assert uuid.uuid5(uuid.NAMESPACE_DNS, "gnss.pointperfect").hex == f.APP_ID


def test_systemd_test_vector():
    # systemd src/test/test-id128.c: sd_id128_get_app_specific(51df0b4b..., f03daaeb...) == 1dee5954...
    assert f.app_specific_id("51df0b4bc3b04c9780e299b98ca373b8", "f03daaeb1c334b43a732172944bf772e") == (
        "1dee5954e75c4d6fb96cc6c04ca18a86"
    )
    # the UUID form and surrounding whitespace (the file ends in a newline) give the same id
    assert f.app_specific_id(" 51DF0B4B-C3B0-4C97-80E2-99B98CA373B8\n", "f03daaeb-1c33-4b43-a732-172944bf772e") == (
        "1dee5954e75c4d6fb96cc6c04ca18a86"
    )


def test_fixed_vector_with_the_collection_app_id():
    out = f.app_specific_id("0123456789abcdef0123456789abcdef")
    assert out == "101d245a47334f9abe7ee6f8b590b709"
    parsed = uuid.UUID(out)
    assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert ZTP_HARDWARE_ID.match("pp-" + out) and len("pp-" + out) == 35


def _machine_id():
    try:
        text = Path("/etc/machine-id").read_text().strip()
    except OSError:
        return None
    return text if re.fullmatch(r"[0-9a-f]{32}", text) and set(text) != {"0"} else None


NO_SYSTEMD = not shutil.which("systemd-id128") or not _machine_id()


@pytest.mark.skipif(NO_SYSTEMD, reason="needs systemd-id128 and a machine id")
@pytest.mark.parametrize("app_id", [f.APP_ID, "f03daaeb1c334b43a732172944bf772e"])
def test_same_as_systemd_id128_on_this_machine(app_id):
    out = subprocess.run(
        ["systemd-id128", "machine-id", "--app-specific=" + app_id], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert f.app_specific_id(_machine_id(), app_id) == out
    assert out != _machine_id()


@pytest.mark.parametrize(
    "bad", ["", "uninitialized", "0" * 32, "0123456789abcdef" * 2 + "0", "0123456789abcdef0123456789abcde", None, 7]
)
def test_bad_machine_id_is_refused_without_echo(bad):
    with pytest.raises(AnsibleFilterError) as err:
        f.app_specific_id(bad)
    assert "machine id" in str(err.value)
    if isinstance(bad, str) and bad:
        assert bad not in str(err.value)


def test_bad_app_id_is_refused():
    with pytest.raises(AnsibleFilterError, match="app id"):
        f.app_specific_id("0123456789abcdef0123456789abcdef", "gnss.pointperfect")


def test_registered_as_a_filter():
    assert f.FilterModule().filters()["app_specific_id"] is f.app_specific_id
