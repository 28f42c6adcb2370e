"""The fleet report on a gateway that cannot run the forwarder (issue 18): the preflight problems that gateway_info
returns (`gateway.preflight`, the checks of the role's first probe) make it unsupported, with the reason."""

import json

from plugins.module_utils import _fleet_report as fr
from plugins.module_utils import _preflight as pf

NOW = 1_790_000_000.0
REASON = f"Python 3.9.2 on the gateway; the forwarder needs 3.10+ ({pf.SUPPORTED_RELEASES})"


def snapshot(*, preflight, service="absent", credentials="missing"):
    """A registered gateway_info result of a gateway the role never provisioned (or did, for service=active)."""
    return {
        "changed": False,
        "failed": False,
        "gateway": {
            "collected_at": "2026-09-21T12:00:00Z",
            "credentials": {"state": credentials, "path": "/etc/pointperfect/credentials.json"},
            "status": {"state": "missing", "path": "/run/pointperfect/status.json", "age": None, "data": None},
            "service": {"state": service, "name": "pointperfect-forwarder.service"},
            "preflight": preflight,
        },
    }


def test_an_old_gateway_is_unsupported_with_the_reason():
    old = pf.problems({"python": {"path": "/usr/bin/python3", "version": "3.9.2", "venv": True}})
    assert [p["message"] for p in old] == [REASON]
    report = fr.fleet_report(
        {"gw-old": snapshot(preflight={"problems": old}), "gw-new": snapshot(preflight={"problems": []})}, now=NOW
    )
    rows = {r["host"]: r for r in report["gateways"]}
    assert rows["gw-old"]["health"] == "unsupported" and rows["gw-old"]["unsupported"] == [REASON]
    (problem,) = rows["gw-old"]["problems"]  # not also "not provisioned": provisioning cannot help
    assert problem["check"] == "unsupported" and problem["message"] == "unsupported: " + REASON
    assert "provision" in problem["remedy"]
    # a supported gateway that is not provisioned yet stays critical with its own remedy
    assert rows["gw-new"]["health"] == "critical" and rows["gw-new"]["unsupported"] is None
    assert report["totals"]["unsupported"] == 1 and report["totals"]["critical"] == 1
    assert [r["host"] for r in report["gateways"]] == ["gw-new", "gw-old"]  # critical first, then unsupported

    table = fr.render_table(report)
    assert "2 gateways: 0 ok, 0 warning, 1 critical, 0 unreachable, 1 unsupported;" in table
    assert any(line.split()[:2] == ["gw-old", "UNSUPPORTED"] for line in table.splitlines())
    assert "CRITICAL gw-old: unsupported: Python 3.9.2 on the gateway; the forwarder needs 3.10+" in table
    html = fr.render_html(report)
    assert 'data-host="gw-old" data-health="unsupported"' in html and "unsupported: Python 3.9.2" in html
    assert json.loads(fr.render_json(report))["totals"]["unsupported"] == 1


def test_a_running_forwarder_is_never_unsupported():
    """The preflight may flag something (e.g. /opt remounted read-only later); a running forwarder proves it runs."""
    ro = [{"check": "writable", "message": "/opt/pointperfect is on a read-only filesystem; remount it read-write"}]
    row = fr.gateway_row("gw", snapshot(preflight={"problems": ro}, service="active", credentials="ok"), NOW)
    assert row["unsupported"] is None


def test_results_without_preflight_are_read_as_before():
    result = snapshot(preflight=None)
    del result["gateway"]["preflight"]
    row = fr.gateway_row("gw", result, NOW)
    assert row["unsupported"] is None
    assert [p["check"] for p in fr.row_problems(row)] == ["credentials"]
