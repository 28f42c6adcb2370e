"""Fixtures of the fleet report tests: registered gateway_info results, built by the real module from fabricated
files at the clock fab.NOW."""

import pytest
from ansible_collections.gnss.pointperfect.plugins.modules import gateway_info

from tests.unit import fabricate as fab


@pytest.fixture
def result(tmp_path):
    """result(name, creds=, status=, service=(ActiveState, SubState, NRestarts) or None) -> a registered result."""

    def build(name, *, creds=None, status=None, service=("active", "running", 0), stale_after=30):
        base = tmp_path / name
        if creds is not None:
            fab.write_credentials(base / "etc", creds)
        if status is not None:
            fab.write_status(base / "status.json", status)
        props = None
        if service is not None:
            active, sub, restarts = service
            load = "not-found" if active == "absent" else "loaded"
            out = (
                f"LoadState={load}\nActiveState={active}\nSubState={sub}\nNRestarts={restarts}\n"
                "ExecMainStartTimestamp=\nMainPID=0\n"
            )

            def props(_args):
                return 0, out, ""

        gateway = gateway_info.gather(
            str(base / "etc"), str(base / "status.json"), "pointperfect-forwarder", stale_after, props, now=fab.NOW
        )
        return {"changed": False, "failed": False, "gateway": gateway}

    return build


@pytest.fixture
def healthy(result):
    """healthy(name="gw-ok") -> the result of a provisioned gateway with a healthy forwarder."""

    def build(name="gw-ok"):
        return result(name, creds=fab.credentials(fab.NOW, hwid=name), status=fab.status(fab.NOW))

    return build
