"""Unit tests of the fleet report's writers: terminal table, self-contained HTML with inline SVG, and JSON."""

import json
from html.parser import HTMLParser

from ansible_collections.gnss.pointperfect.plugins.module_utils import _preflight as pf
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _fleet_health as health
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _fleet_render as render

from tests.unit import fabricate as fab

NOW = fab.NOW


def test_table_lists_rows_and_remedies(result, healthy):
    results = {
        "gw-ok": healthy(),
        "gw-bad": result("gw-bad", creds=fab.credentials(NOW, cert_days=3), status=fab.status(NOW, updated_ago=300)),
    }
    text = render.render_table(health.fleet_report(results, now=NOW))
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["HOST", "HEALTH"]
    assert lines[2].startswith("gw-bad") and "CRITICAL" in lines[2]
    assert lines[3].startswith("gw-ok") and "OK" in lines[3]
    assert "remedy: run gnss.pointperfect.provision" in text
    assert "1 critical" in text
    assert "No problems." in render.render_table(health.fleet_report({"gw-ok": healthy()}, now=NOW))


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


def test_html_is_self_contained_escaped_and_complete(healthy):
    evil = '<script>alert("x")</script>'
    results = {evil: None, "gw-ok": healthy()}
    page = render.render_html(health.fleet_report(results, now=NOW))
    assert page.startswith("<!DOCTYPE html>")
    assert evil not in page and "&lt;script&gt;" in page
    parsed = _Collect()
    parsed.feed(page)
    assert parsed.rows == [(evil, "unknown"), ("gw-ok", "ok")]
    assert parsed.refs == [] and "script" not in parsed.tags and "link" not in parsed.tags
    assert parsed.tags.count("svg") == 2  # one sparkline (gw-ok) and the timeline
    assert "Remedy: check the network path" in page


def test_sparkline_and_timeline_geometry():
    assert render.sparkline_svg([]) == "-"
    one = render.sparkline_svg([["t", 5.0]])
    assert "<circle" in one and "<polyline" not in one
    many = render.sparkline_svg([["a", 0.0], ["b", 10.0], ["c", 5.0]], width=100, height=20)
    points = many.split('points="')[1].split('"')[0].split()
    assert points == ["2.0,18.0", "50.0,2.0", "98.0,10.0"]  # max at the top, zero at the bottom
    report = {
        "thresholds": health.thresholds_with_defaults(),
        "gateways": [
            {"host": "soon", "certificate_days": 10.0, "key_days": None},
            {"host": "late", "certificate_days": 100.0, "key_days": 3.0},
        ],
    }
    svg = render.timeline_svg(report)
    assert svg.count("<circle") == 2 and svg.count("<rect") == 1
    assert "var(--warning)" in svg and "var(--ok)" in svg
    assert render.timeline_svg({"thresholds": report["thresholds"], "gateways": [{"host": "x"}]}).startswith("<p>")


def test_json_is_stable_and_round_trips(healthy):
    report = health.fleet_report({"gw-ok": healthy()}, now=NOW)
    text = render.render_json(report)
    assert text.endswith("\n") and json.loads(text) == report
    assert render.render_json(json.loads(text)) == text


def test_region_and_its_source_are_shown(result):
    results = {
        "gw-us": result("gw-us", creds=fab.credentials(NOW), status=fab.status(NOW, region="us")),
        "gw-eu": result("gw-eu", creds=fab.credentials(NOW), status=fab.status(NOW, region_source="inventory")),
    }
    report = health.fleet_report(results, now=NOW)
    rows = {g["host"]: g for g in report["gateways"]}
    assert (rows["gw-us"]["region"], rows["gw-us"]["region_source"]) == ("us", "position")
    assert rows["gw-us"]["regions"] == ["eu", "us"]
    assert report["problems"] == []
    table = render.render_table(report)
    assert "REGION" in table.splitlines()[0]
    assert "us (position)" in table and "eu (inventory)" in table
    page = render.render_html(report)
    assert ">Region</th>" in page and ">us (position)</td>" in page


def test_region_text_says_waiting_until_an_mqtt_forwarder_chooses_a_region(result):
    st = fab.status(NOW, region=None, last_data_age=None)
    report = health.fleet_report({"gw": result("gw", creds=fab.credentials(NOW), status=st)}, now=NOW)
    assert render.region_text(report["gateways"][0]) == "waiting"


def test_an_older_forwarder_without_region_or_lband_is_described_by_its_input(result):
    st = fab.status(NOW)
    del st["region"], st["lband"]
    report = health.fleet_report({"gw": result("gw", creds=fab.credentials(NOW), status=st)}, now=NOW)
    row = report["gateways"][0]
    assert render.region_text(row) is None and render.service_text(row) == "mqtt"


def test_lband_mode_is_the_service_shown(result):
    d9s = {"mode": "d9s", "device": "/dev/ttyACM1", "frequency_hz": 1545260000, "d9s_state": "applied"}
    creds = dict(fab.credentials(NOW), plan="lband")
    ok = result("gw-lb", creds=creds, status=fab.status(NOW, lband=dict(d9s, pmp_frames=42)))
    report = health.fleet_report({"gw-lb": ok}, now=NOW)
    assert render.service_text(report["gateways"][0]) == "L-band d9s"
    assert "lband/L-band d9s" in render.render_table(report)


def test_an_unsupported_gateway_is_shown_with_the_reason():
    """Issue 18: a gateway that cannot run the forwarder has its own health and its reason in every writer."""
    old = pf.problems({"python": {"path": "/usr/bin/python3", "version": "3.9.2", "venv": True}})
    report = health.fleet_report(
        {
            "gw-old": fab.unprovisioned_result(preflight={"problems": old}),
            "gw-new": fab.unprovisioned_result(preflight={"problems": []}),
        },
        now=NOW,
    )
    table = render.render_table(report)
    assert "2 gateways: 0 ok, 0 warning, 1 critical, 0 unreachable, 1 unsupported;" in table
    assert any(line.split()[:2] == ["gw-old", "UNSUPPORTED"] for line in table.splitlines())
    assert "CRITICAL gw-old: unsupported: Python 3.9.2 on the gateway; the forwarder needs 3.10+" in table
    html = render.render_html(report)
    assert 'data-host="gw-old" data-health="unsupported"' in html and "unsupported: Python 3.9.2" in html
    assert json.loads(render.render_json(report))["totals"]["unsupported"] == 1
