"""The fleet_report filter's keep_hosts: rows of gateways a --limit run left out come from the previous report."""

import json

from ansible_collections.gnss.pointperfect.plugins.filter import fleet


def _previous():
    return {
        "gateways": [
            {
                "host": "gw-a",
                "health": "critical",
                "history": [["t", 1.0]],
                "problems": [
                    {"host": "gw-a", "check": "service", "severity": "critical", "message": "m", "remedy": "r"}
                ],
            },
            {"host": "gw-b", "health": "ok", "history": [["t", 2.0]], "problems": []},
            {"host": "gw-gone", "health": "ok", "history": [], "problems": []},
            {"host": "gw-junk", "health": "splendid", "problems": []},
            "not a row",
        ]
    }


def test_keep_hosts_carries_rows_over_and_recounts():
    report = fleet.fleet_report({"gw-c": None}, {}, json.dumps(_previous()), 48, ["gw-a", "gw-b", "gw-junk"])
    hosts = [g["host"] for g in report["gateways"]]
    assert sorted(hosts) == ["gw-a", "gw-b", "gw-c"]
    carried = {g["host"]: g for g in report["gateways"] if g.get("carried_over")}
    assert set(carried) == {"gw-a", "gw-b"} and carried["gw-a"]["history"] == [["t", 1.0]]
    assert report["totals"]["gateways"] == 3 and report["totals"]["critical"] == 1
    assert ("gw-a", "service") in {(p["host"], p["check"]) for p in report["problems"]}


def test_without_keep_hosts_or_with_junk_the_report_is_this_run_only():
    plain = fleet.fleet_report({"gw-c": None}, {}, json.dumps(_previous()))
    assert [g["host"] for g in plain["gateways"]] == ["gw-c"]
    for junk in ("", "{not json", "[]", json.dumps({"gateways": "x"})):
        report = fleet.fleet_report({"gw-c": None}, {}, junk, 48, ["gw-a"])
        assert [g["host"] for g in report["gateways"]] == ["gw-c"]
