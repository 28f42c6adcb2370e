"""module_utils/_app_specific_id: the stdlib scheme the filter and gateway_probe share; a bad id raises ValueError
naming what is wrong, never the value."""

import pytest
from ansible_collections.gnss.pointperfect.plugins.module_utils import _app_specific_id as a


def test_systemd_test_vector():
    # systemd src/test/test-id128.c: sd_id128_get_app_specific(51df0b4b..., f03daaeb...) == 1dee5954...
    got = a.app_specific_id("51df0b4bc3b04c9780e299b98ca373b8", "f03daaeb1c334b43a732172944bf772e")
    assert got == "1dee5954e75c4d6fb96cc6c04ca18a86"


@pytest.mark.parametrize("bad", ["uninitialized", "0" * 32, None, 7, "ab" * 15])
def test_bad_machine_id_raises_value_error_without_echo(bad):
    with pytest.raises(ValueError, match="machine id") as err:
        a.app_specific_id(bad)
    if isinstance(bad, str):
        assert bad not in str(err.value)


def test_id128_reads_both_forms():
    raw = a.id128(" 51DF0B4B-C3B0-4C97-80E2-99B98CA373B8\n", "machine id")
    assert raw == bytes.fromhex("51df0b4bc3b04c9780e299b98ca373b8")
