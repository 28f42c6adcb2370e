"""Unit tests of the fleet report: health evaluation against thresholds, ordering, history and the three writers."""

import json
from html.parser import HTMLParser

import pytest

from plugins.module_utils import _fleet_report as fr
from plugins.modules import gateway_info as gs
from tests.unit.status import fabricate as fab

NOW = 1_790_000_000.0


def result(tmp_path, name, *, creds=None, status=None, service=("active", "running", 0), stale_after=30):
    """A registered gateway_status result built by the real module code from fabricated files."""
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

    gateway = gs.gather(
        str(base / "etc"), str(base / "status.json"), "pointperfect-forwarder", stale_after, props, now=NOW
    )
    return {"changed": False, "failed": False, "gateway": gateway}


def healthy(tmp_path, name="gw-ok"):
    return result(tmp_path, name, creds=fab.credentials(NOW, hwid=name), status=fab.status(NOW))


def checks(problems):
    return sorted(p["check"] for p in problems)


def test_healthy_gateway_has_no_problem(tmp_path):
    assert fr.fleet_health({"gw-ok": healthy(tmp_path)}, now=NOW) == []


@pytest.mark.parametrize(
    ("kwargs", "expected", "severity"),
    [
        ({"creds": None, "status": None, "service": ("absent", "dead", 0)}, ["credentials"], "critical"),
        ({"service": ("failed", "failed", 0)}, ["service"], "critical"),
        ({"service": ("absent", "dead", 0)}, ["service"], "critical"),
        ({"service": ("active", "running", 4)}, ["restarts"], "warning"),
        ({"cert_days": 29.0}, ["certificate"], "warning"),
        ({"cert_days": -1.0}, ["certificate"], "critical"),
        ({"key_days": 6.0, "next_key": False}, ["keys"], "warning"),
        ({"status": "stale"}, ["status"], "critical"),
        ({"status": None}, ["status"], "critical"),
        ({"input": {"state": "connected", "last_data_age": 61}}, ["data"], "critical"),
        (
            {
                "input": {
                    "state": "auth_failed",
                    "last_data_age": None,
                    "last_error": "credentials rejected: re-run provisioning",
                }
            },
            ["input"],
            "critical",
        ),
        ({"input": {"state": "connected", "config_state": "failed"}}, ["receiver"], "warning"),
    ],
)
def test_each_threshold_flags_its_problem(tmp_path, kwargs, expected, severity):
    creds = fab.credentials(NOW, cert_days=kwargs.get("cert_days", 200.0), key_days=kwargs.get("key_days", 20.0))
    st = fab.status(NOW)
    if kwargs.get("next_key") is False:
        creds["dynamickeys"]["next"] = None
        st["keys"] = {}
    if "input" in kwargs:
        inp = dict(kwargs["input"])
        st = fab.status(
            NOW,
            state=inp.pop("state"),
            config_state=inp.pop("config_state", "applied"),
            last_data_age=inp.pop("last_data_age", 1.0),
            last_error=inp.pop("last_error", None),
        )
    if kwargs.get("status") == "stale":
        st = fab.status(NOW, updated_ago=120)
    elif "status" in kwargs:
        st = kwargs["status"]
    if "creds" in kwargs:
        creds = kwargs["creds"]
    res = result(tmp_path, "gw-x", creds=creds, status=st, service=kwargs.get("service", ("active", "running", 0)))
    problems = fr.fleet_health({"gw-x": res}, now=NOW)
    assert checks(problems) == expected
    assert problems[0]["severity"] == severity
    assert all(p["remedy"] and p["host"] == "gw-x" for p in problems)


def test_stalled_output_is_a_warning_with_its_remedy(tmp_path):
    st = fab.status(NOW, healthy=False)
    st["output"]["state"] = "stalled"  # the forwarder's writer waited > 2 s for the receiver
    problems = fr.fleet_health({"gw-x": result(tmp_path, "gw-x", creds=fab.credentials(NOW), status=st)}, now=NOW)
    assert [(p["check"], p["severity"], p["message"]) for p in problems] == [
        ("output", "warning", "output serial is stalled")
    ]
    assert "receiver link" in problems[0]["remedy"]


def test_threshold_boundaries_and_overrides(tmp_path):
    res = result(tmp_path, "gw", creds=fab.credentials(NOW, cert_days=30.0), status=fab.status(NOW, last_data_age=60))
    assert fr.fleet_health({"gw": res}, now=NOW) == []  # exactly at the thresholds is still fine
    tight = fr.fleet_health({"gw": res}, {"renew_before_days": 31, "max_data_age": 59.5}, now=NOW)
    assert checks(tight) == ["certificate", "data"]
    assert tight[0]["check"] == "data"  # critical before warning
    assert tight[1]["threshold"] == 31.0 and tight[1]["value"] == 30.0
    with pytest.raises(ValueError, match="unknown threshold"):
        fr.fleet_health({"gw": res}, {"renew_before": 3}, now=NOW)
    with pytest.raises(ValueError, match="must be a number"):
        fr.fleet_health({"gw": res}, {"max_data_age": "soon"}, now=NOW)


def test_forwarder_newer_key_counts(tmp_path):
    """credentials.json keys run out in 2 days but the forwarder already holds a later key: no key problem."""
    creds = fab.credentials(NOW, key_days=2)
    creds["dynamickeys"]["next"] = None
    res = result(tmp_path, "gw", creds=creds, status=fab.status(NOW))
    row = fr.gateway_row("gw", res, NOW)
    assert row["key_days"] == 48.0
    assert fr.fleet_health({"gw": res}, now=NOW) == []


def test_unreachable_and_failed_results(tmp_path):
    problems = fr.fleet_health(
        {
            "a": None,
            "b": {"unreachable": True, "msg": "ssh: timeout"},
            "c": {"failed": True, "msg": "python not found"},
            "d": healthy(tmp_path, "d"),
        },
        now=NOW,
    )
    assert [(p["host"], p["check"]) for p in problems] == [("a", "reachable"), ("b", "reachable"), ("c", "collect")]
    assert "ssh: timeout" in problems[1]["message"]


def test_report_orders_worst_first_and_totals(tmp_path):
    results = {
        "a-ok": healthy(tmp_path, "a-ok"),
        "b-warn": result(tmp_path, "b-warn", creds=fab.credentials(NOW, cert_days=5), status=fab.status(NOW)),
        "c-crit": result(
            tmp_path, "c-crit", creds=fab.credentials(NOW), status=fab.status(NOW), service=("failed", "failed", 9)
        ),
        "d-down": None,
    }
    report = fr.fleet_report(results, now=NOW)
    assert [g["host"] for g in report["gateways"]] == ["c-crit", "d-down", "b-warn", "a-ok"]
    assert [g["health"] for g in report["gateways"]] == ["critical", "unknown", "warning", "ok"]
    assert report["problems"][0]["severity"] == "critical"
    assert [p["severity"] for p in report["problems"]][-1] == "warning"
    tot = report["totals"]
    assert (tot["gateways"], tot["ok"], tot["warning"], tot["critical"], tot["unknown"]) == (4, 1, 1, 1, 1)
    assert tot["reachable"] == 3 and tot["forwarders_active"] == 2
    assert tot["soonest_certificate"] == {"host": "b-warn", "days": 5.0}
    assert tot["bytes_per_second"] == 3 * 512.0


def test_history_from_previous_report(tmp_path):
    results = {"gw": healthy(tmp_path)}
    first = fr.fleet_report(results, previous="", now=NOW)
    assert first["gateways"][0]["history"] == [[fab.iso(NOW), 512.0]]
    again = fr.fleet_report(results, previous=fr.render_json(first), now=NOW)
    assert len(again["gateways"][0]["history"]) == 1  # same collection time: no duplicate sample
    later = fr.fleet_report(
        {"gw-new": result(tmp_path, "gw2", creds=fab.credentials(NOW), status=fab.status(NOW))},
        previous={"gateways": [{"host": "gw", "history": [["2026-01-01T00:00:00Z", 1.0]] * 5}]},
        now=NOW,
    )
    assert later["gateways"][0]["history"] == [[fab.iso(NOW), 512.0]]  # history belongs to the host name
    capped = fr.fleet_report(
        results,
        previous={
            "gateways": [{"host": "gw", "history": [[f"2026-01-01T00:00:{i:02d}Z", float(i)] for i in range(10)]}]
        },
        now=NOW,
        history_length=4,
    )
    assert [p[1] for p in capped["gateways"][0]["history"]] == [7.0, 8.0, 9.0, 512.0]
    for junk in ("{broken", "[]", '{"gateways": [{"host": 3}, {"host": "gw", "history": [["x"], 5]}]}'):
        assert fr.fleet_report(results, previous=junk, now=NOW)["gateways"][0]["history"] == [[fab.iso(NOW), 512.0]]


def test_table_lists_rows_and_remedies(tmp_path):
    results = {
        "gw-ok": healthy(tmp_path),
        "gw-bad": result(
            tmp_path, "gw-bad", creds=fab.credentials(NOW, cert_days=3), status=fab.status(NOW, updated_ago=300)
        ),
    }
    text = fr.render_table(fr.fleet_report(results, now=NOW))
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["HOST", "HEALTH"]
    assert lines[2].startswith("gw-bad") and "CRITICAL" in lines[2]
    assert lines[3].startswith("gw-ok") and "OK" in lines[3]
    assert "remedy: run gnss.pointperfect.provision" in text
    assert "1 critical" in text
    assert "No problems." in fr.render_table(fr.fleet_report({"gw-ok": healthy(tmp_path)}, now=NOW))


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.refs, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "tr" and "data-host" in attrs:
            self.rows.append((attrs["data-host"], attrs["data-health"]))
        self.refs += [v for k, v in attrs.items() if k in ("src", "href")]


def test_html_is_self_contained_escaped_and_complete(tmp_path):
    evil = '<script>alert("x")</script>'
    results = {evil: None, "gw-ok": healthy(tmp_path)}
    page = fr.render_html(fr.fleet_report(results, now=NOW))
    assert page.startswith("<!DOCTYPE html>")
    assert evil not in page and "&lt;script&gt;" in page
    parsed = _Collect()
    parsed.feed(page)
    assert parsed.rows == [(evil, "unknown"), ("gw-ok", "ok")]
    assert parsed.refs == [] and "script" not in parsed.tags and "link" not in parsed.tags
    assert parsed.tags.count("svg") == 2  # one sparkline (gw-ok) and the timeline
    assert "Remedy: check the network path" in page


def test_sparkline_and_timeline_geometry():
    assert fr.sparkline_svg([]) == "-"
    one = fr.sparkline_svg([["t", 5.0]])
    assert "<circle" in one and "<polyline" not in one
    many = fr.sparkline_svg([["a", 0.0], ["b", 10.0], ["c", 5.0]], width=100, height=20)
    points = many.split('points="')[1].split('"')[0].split()
    assert points == ["2.0,18.0", "50.0,2.0", "98.0,10.0"]  # max at the top, zero at the bottom
    report = {
        "thresholds": fr.thresholds_with_defaults(),
        "gateways": [
            {"host": "soon", "certificate_days": 10.0, "key_days": None},
            {"host": "late", "certificate_days": 100.0, "key_days": 3.0},
        ],
    }
    svg = fr.timeline_svg(report)
    assert svg.count("<circle") == 2 and svg.count("<rect") == 1
    assert "var(--warning)" in svg and "var(--ok)" in svg
    assert fr.timeline_svg({"thresholds": report["thresholds"], "gateways": [{"host": "x"}]}).startswith("<p>")


def test_json_is_stable_and_round_trips(tmp_path):
    report = fr.fleet_report({"gw-ok": healthy(tmp_path)}, now=NOW)
    text = fr.render_json(report)
    assert text.endswith("\n") and json.loads(text) == report
    assert fr.render_json(json.loads(text)) == text


def test_waiting_for_position_is_a_warning_with_its_remedy(tmp_path):
    st = fab.status(
        NOW,
        input_type="ntrip",
        state="waiting_for_position",
        last_data_age=None,
        healthy=False,
        last_error="waiting for a position fix",
        region=None,
    )
    res = result(tmp_path, "gw-n", creds=fab.credentials(NOW, ntrip=True), status=st)
    report = fr.fleet_report({"gw-n": res}, now=NOW)
    assert [(p["check"], p["severity"]) for p in report["problems"]] == [("position", "warning")]
    remedy = report["problems"][0]["remedy"]
    assert "antenna" in remedy and "pointperfect_fixed_position" in remedy
    assert report["gateways"][0]["health"] == "warning"


def test_region_and_its_source_are_shown(tmp_path):
    results = {
        "gw-us": result(tmp_path, "gw-us", creds=fab.credentials(NOW), status=fab.status(NOW, region="us")),
        "gw-eu": result(
            tmp_path, "gw-eu", creds=fab.credentials(NOW), status=fab.status(NOW, region_source="inventory")
        ),
    }
    report = fr.fleet_report(results, now=NOW)
    rows = {g["host"]: g for g in report["gateways"]}
    assert (rows["gw-us"]["region"], rows["gw-us"]["region_source"]) == ("us", "position")
    assert rows["gw-us"]["regions"] == ["eu", "us"]
    assert report["problems"] == []
    table = fr.render_table(report)
    assert "REGION" in table.splitlines()[0]
    assert "us (position)" in table and "eu (inventory)" in table
    page = fr.render_html(report)
    assert ">Region</th>" in page and ">us (position)</td>" in page


def test_mqtt_forwarder_without_a_region_yet_is_a_warning(tmp_path):
    st = fab.status(NOW, region=None, last_data_age=None)
    res = result(tmp_path, "gw", creds=fab.credentials(NOW), status=st)
    report = fr.fleet_report({"gw": res}, now=NOW)
    assert [(p["check"], p["severity"]) for p in report["problems"]] == [("region", "warning")]
    assert "eu, us" in report["problems"][0]["message"]
    assert "pointperfect_fixed_position" in report["problems"][0]["remedy"]
    assert fr.region_text(report["gateways"][0]) == "waiting"


def test_status_of_an_older_forwarder_without_region_or_lband(tmp_path):
    st = fab.status(NOW)
    del st["region"], st["lband"]
    res = result(tmp_path, "gw", creds=fab.credentials(NOW), status=st)
    report = fr.fleet_report({"gw": res}, now=NOW)
    assert report["problems"] == []
    row = report["gateways"][0]
    assert fr.region_text(row) is None and fr.service_text(row) == "mqtt"
    assert row["regions"] == ["eu", "us"]  # from credentials.json


def test_lband_mode_and_d9s_failure(tmp_path):
    d9s = {"mode": "d9s", "device": "/dev/ttyACM1", "frequency_hz": 1545260000, "d9s_state": "applied"}
    creds = dict(fab.credentials(NOW), plan="lband")
    ok = result(tmp_path, "gw-lb", creds=creds, status=fab.status(NOW, lband=dict(d9s, pmp_frames=42)))
    bad = result(tmp_path, "gw-lb2", creds=creds, status=fab.status(NOW, lband=dict(d9s, d9s_state="failed")))
    report = fr.fleet_report({"gw-lb": ok, "gw-lb2": bad}, now=NOW)
    rows = {g["host"]: g for g in report["gateways"]}
    assert rows["gw-lb"]["lband_mode"] == "d9s" and rows["gw-lb"]["lband_pmp_frames"] == 42
    assert fr.service_text(rows["gw-lb"]) == "L-band d9s"
    assert [(p["host"], p["check"], p["severity"]) for p in report["problems"]] == [("gw-lb2", "lband", "warning")]
    assert "pointperfect_lband_device" in report["problems"][0]["remedy"]
    assert "lband/L-band d9s" in fr.render_table(report)
