"""Reliability suite setup: its markers and its forwarders' longer waits (the world's fixtures come from
pointperfect_sim's pytest plugin)."""

from __future__ import annotations

import pytest

from tests.reliability import suite as L


def pytest_configure(config):
    config.addinivalue_line("markers", "reliability: reliability and security suite (tests/reliability, issue 7)")
    config.addinivalue_line("markers", "netns: creates its own network namespace and veth pair (root, iproute2)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def forwarder_timeouts() -> dict:
    return L.TIMEOUTS
