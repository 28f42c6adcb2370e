"""Unit tests of the fleet report's data: rows, the checks with their thresholds, ordering, totals and history."""

import pytest
from ansible_collections.gnss.pointperfect.plugins.module_utils import _preflight as pf
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _fleet_health as health
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _fleet_render as render

from tests.unit import fabricate as fab

NOW = fab.NOW
REASON = f"Python 3.9.2 on the gateway; the forwarder needs 3.10+ ({pf.SUPPORTED_RELEASES})"


def checks(problems):
    return sorted(p["check"] for p in problems)


def test_healthy_gateway_has_no_problem(healthy):
    assert health.fleet_health({"gw-ok": healthy()}, now=NOW) == []


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
def test_each_threshold_flags_its_problem(result, kwargs, expected, severity):
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
    res = result("gw-x", creds=creds, status=st, service=kwargs.get("service", ("active", "running", 0)))
    problems = health.fleet_health({"gw-x": res}, now=NOW)
    assert checks(problems) == expected
    assert problems[0]["severity"] == severity
    assert all(p["remedy"] and p["host"] == "gw-x" for p in problems)


def test_stalled_output_is_a_warning_with_its_remedy(result):
    st = fab.status(NOW, healthy=False)
    st["output"]["state"] = "stalled"  # the forwarder's writer waited > 2 s for the receiver
    problems = health.fleet_health({"gw-x": result("gw-x", creds=fab.credentials(NOW), status=st)}, now=NOW)
    assert [(p["check"], p["severity"], p["message"]) for p in problems] == [
        ("output", "warning", "output serial is stalled")
    ]
    assert "receiver link" in problems[0]["remedy"]


def test_threshold_boundaries_and_overrides(result):
    res = result("gw", creds=fab.credentials(NOW, cert_days=30.0), status=fab.status(NOW, last_data_age=60))
    assert health.fleet_health({"gw": res}, now=NOW) == []  # exactly at the thresholds is still fine
    tight = health.fleet_health({"gw": res}, {"renew_before_days": 31, "max_data_age": 59.5}, now=NOW)
    assert checks(tight) == ["certificate", "data"]
    assert tight[0]["check"] == "data"  # critical before warning
    assert tight[1]["threshold"] == 31.0 and tight[1]["value"] == 30.0
    with pytest.raises(ValueError, match="unknown threshold"):
        health.fleet_health({"gw": res}, {"renew_before": 3}, now=NOW)
    with pytest.raises(ValueError, match="must be a number"):
        health.fleet_health({"gw": res}, {"max_data_age": "soon"}, now=NOW)


def test_forwarder_newer_key_counts(result):
    """credentials.json keys run out in 2 days but the forwarder already holds a later key: no key problem."""
    creds = fab.credentials(NOW, key_days=2)
    creds["dynamickeys"]["next"] = None
    res = result("gw", creds=creds, status=fab.status(NOW))
    row = health.gateway_row("gw", res, NOW)
    assert row["key_days"] == 48.0
    assert health.fleet_health({"gw": res}, now=NOW) == []


def test_unreachable_and_failed_results(healthy):
    problems = health.fleet_health(
        {
            "a": None,
            "b": {"unreachable": True, "msg": "ssh: timeout"},
            "c": {"failed": True, "msg": "python not found"},
            "d": healthy("d"),
        },
        now=NOW,
    )
    assert [(p["host"], p["check"]) for p in problems] == [("a", "reachable"), ("b", "reachable"), ("c", "collect")]
    assert "ssh: timeout" in problems[1]["message"]


def test_report_orders_worst_first_and_totals(result, healthy):
    results = {
        "a-ok": healthy("a-ok"),
        "b-warn": result("b-warn", creds=fab.credentials(NOW, cert_days=5), status=fab.status(NOW)),
        "c-crit": result("c-crit", creds=fab.credentials(NOW), status=fab.status(NOW), service=("failed", "failed", 9)),
        "d-down": None,
    }
    report = health.fleet_report(results, now=NOW)
    assert [g["host"] for g in report["gateways"]] == ["c-crit", "d-down", "b-warn", "a-ok"]
    assert [g["health"] for g in report["gateways"]] == ["critical", "unknown", "warning", "ok"]
    assert report["problems"][0]["severity"] == "critical"
    assert [p["severity"] for p in report["problems"]][-1] == "warning"
    tot = report["totals"]
    assert (tot["gateways"], tot["ok"], tot["warning"], tot["critical"], tot["unknown"]) == (4, 1, 1, 1, 1)
    assert tot["reachable"] == 3 and tot["forwarders_active"] == 2
    assert tot["soonest_certificate"] == {"host": "b-warn", "days": 5.0}
    assert tot["bytes_per_second"] == 3 * 512.0


def test_history_from_previous_report(result, healthy):
    results = {"gw": healthy()}
    first = health.fleet_report(results, previous="", now=NOW)
    assert first["gateways"][0]["history"] == [[fab.iso(NOW), 512.0]]
    again = health.fleet_report(results, previous=render.render_json(first), now=NOW)
    assert len(again["gateways"][0]["history"]) == 1  # same collection time: no duplicate sample
    later = health.fleet_report(
        {"gw-new": result("gw2", creds=fab.credentials(NOW), status=fab.status(NOW))},
        previous={"gateways": [{"host": "gw", "history": [["2026-01-01T00:00:00Z", 1.0]] * 5}]},
        now=NOW,
    )
    assert later["gateways"][0]["history"] == [[fab.iso(NOW), 512.0]]  # history belongs to the host name
    capped = health.fleet_report(
        results,
        previous={
            "gateways": [{"host": "gw", "history": [[f"2026-01-01T00:00:{i:02d}Z", float(i)] for i in range(10)]}]
        },
        now=NOW,
        history_length=4,
    )
    assert [p[1] for p in capped["gateways"][0]["history"]] == [7.0, 8.0, 9.0, 512.0]
    for junk in ("{broken", "[]", '{"gateways": [{"host": 3}, {"host": "gw", "history": [["x"], 5]}]}'):
        assert health.fleet_report(results, previous=junk, now=NOW)["gateways"][0]["history"] == [[fab.iso(NOW), 512.0]]


def test_waiting_for_position_is_a_warning_with_its_remedy(result):
    st = fab.status(
        NOW,
        input_type="ntrip",
        state="waiting_for_position",
        last_data_age=None,
        healthy=False,
        last_error="waiting for a position fix",
        region=None,
    )
    res = result("gw-n", creds=fab.credentials(NOW, ntrip=True), status=st)
    report = health.fleet_report({"gw-n": res}, now=NOW)
    assert [(p["check"], p["severity"]) for p in report["problems"]] == [("position", "warning")]
    remedy = report["problems"][0]["remedy"]
    assert "antenna" in remedy and "pointperfect_fixed_position" in remedy
    assert report["gateways"][0]["health"] == "warning"


def test_mqtt_forwarder_without_a_region_yet_is_a_warning(result):
    st = fab.status(NOW, region=None, last_data_age=None)
    res = result("gw", creds=fab.credentials(NOW), status=st)
    report = health.fleet_report({"gw": res}, now=NOW)
    assert [(p["check"], p["severity"]) for p in report["problems"]] == [("region", "warning")]
    assert "eu, us" in report["problems"][0]["message"]
    assert "pointperfect_fixed_position" in report["problems"][0]["remedy"]


def test_status_of_an_older_forwarder_without_region_or_lband(result):
    st = fab.status(NOW)
    del st["region"], st["lband"]
    res = result("gw", creds=fab.credentials(NOW), status=st)
    report = health.fleet_report({"gw": res}, now=NOW)
    assert report["problems"] == []
    row = report["gateways"][0]
    assert row["regions"] == ["eu", "us"]  # from credentials.json


def test_lband_mode_and_d9s_failure(result):
    d9s = {"mode": "d9s", "device": "/dev/ttyACM1", "frequency_hz": 1545260000, "d9s_state": "applied"}
    creds = dict(fab.credentials(NOW), plan="lband")
    ok = result("gw-lb", creds=creds, status=fab.status(NOW, lband=dict(d9s, pmp_frames=42)))
    bad = result("gw-lb2", creds=creds, status=fab.status(NOW, lband=dict(d9s, d9s_state="failed")))
    report = health.fleet_report({"gw-lb": ok, "gw-lb2": bad}, now=NOW)
    rows = {g["host"]: g for g in report["gateways"]}
    assert rows["gw-lb"]["lband_mode"] == "d9s" and rows["gw-lb"]["lband_pmp_frames"] == 42
    assert [(p["host"], p["check"], p["severity"]) for p in report["problems"]] == [("gw-lb2", "lband", "warning")]
    assert "pointperfect_lband_device" in report["problems"][0]["remedy"]


# A gateway that cannot run the forwarder (issue 18): the preflight problems that gateway_info returns
# (`gateway.preflight`, the checks of the role's first probe) make it unsupported, with the reason.


def test_an_old_gateway_is_unsupported_with_the_reason():
    old = pf.problems({"python": {"path": "/usr/bin/python3", "version": "3.9.2", "venv": True}})
    assert [p["message"] for p in old] == [REASON]
    report = health.fleet_report(
        {
            "gw-old": fab.unprovisioned_result(preflight={"problems": old}),
            "gw-new": fab.unprovisioned_result(preflight={"problems": []}),
        },
        now=NOW,
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


def test_a_running_forwarder_is_never_unsupported():
    """The preflight may flag something (e.g. /opt remounted read-only later); a running forwarder proves it runs."""
    ro = [{"check": "writable", "message": "/opt/pointperfect is on a read-only filesystem; remount it read-write"}]
    snapshot = fab.unprovisioned_result(preflight={"problems": ro}, service="active", credentials="ok")
    row = health.gateway_row("gw", snapshot, NOW)
    assert row["unsupported"] is None


def test_results_without_preflight_are_read_as_before():
    snapshot = fab.unprovisioned_result(preflight=None)
    del snapshot["gateway"]["preflight"]
    row = health.gateway_row("gw", snapshot, NOW)
    assert row["unsupported"] is None
    assert [p["check"] for p in health.row_problems(row)] == ["credentials"]


# The check tables: each check fires on its own bad row, alone, and on no good row.

GOOD_ROW = {
    "host": "gw",
    "reachable": True,
    "error": None,
    "unsupported": None,
    "credentials_state": "ok",
    "certificate_days": 200.0,
    "key_days": 20.0,
    "forwarder_state": "active",
    "forwarder_unit": "pointperfect-forwarder.service",
    "restarts": 0,
    "status_state": "ok",
    "status_age": 0.5,
    "healthy": True,
    "input_type": "mqtt",
    "input_state": "connected",
    "endpoint": "127.0.0.1:8883",
    "last_data_age": 1.0,
    "output_type": "serial",
    "output_state": "open",
    "region": "eu",
    "region_pending": False,
    "regions": ["eu", "us"],
    "lband_d9s_state": None,
    "receiver_config_state": "applied",
}

# (check, severity, the fields that make GOOD_ROW bad for that check alone): one entry per entry of the tables
BAD_ROWS = [
    ("reachable", "critical", {"reachable": False, "error": "ssh: timeout"}),
    ("collect", "critical", {"error": "python not found"}),
    ("unsupported", "critical", {"unsupported": ["Python 3.9.2 on the gateway"]}),
    ("credentials", "critical", {"credentials_state": "missing"}),
    ("credentials", "critical", {"credentials_state": "corrupt", "credentials_error": "not JSON"}),
    ("certificate", "critical", {"certificate_days": -1.5}),
    ("certificate", "warning", {"certificate_days": 29.9}),
    ("keys", "critical", {"key_days": 0.0}),
    ("keys", "warning", {"key_days": 6.5}),
    ("service", "critical", {"forwarder_state": "absent"}),
    ("service", "critical", {"forwarder_state": "failed", "forwarder_sub_state": "failed"}),
    ("restarts", "warning", {"restarts": 4}),
    ("status", "critical", {"status_state": "missing"}),
    ("status", "critical", {"status_state": "stale", "status_age": 120.0}),
    ("status", "warning", {"status_state": "unreadable", "status_error": "permission denied"}),
    ("position", "warning", {"input_state": "waiting_for_position", "last_data_age": None}),
    ("input", "critical", {"input_state": "auth_failed", "last_data_age": None}),
    ("data", "critical", {"input_state": "connecting", "last_data_age": None}),
    ("data", "critical", {"last_data_age": 61.0}),
    ("output", "warning", {"output_state": "stalled"}),
    ("region", "warning", {"region": None, "region_pending": True}),
    ("lband", "warning", {"lband_d9s_state": "failed"}),
    ("receiver", "warning", {"receiver_config_state": "failed"}),
    ("healthy", "warning", {"healthy": False, "last_error": "receiver silent"}),
]
ALL_CHECKS = health.GATES + health.CHECKS + health.FALLBACKS


def _fired(row):
    thresholds = health.thresholds_with_defaults()
    return [check for check in ALL_CHECKS if check.test(row, thresholds) is not None]


def test_every_check_of_the_tables_has_its_bad_row_here():
    fired = [_fired(dict(GOOD_ROW, **fields)) for _name, _severity, fields in BAD_ROWS]
    assert sorted(map(id, (check for checks in fired for check in checks))) == sorted(map(id, ALL_CHECKS))
    assert all(check.severity in health.SEVERITY_RANK for check in ALL_CHECKS)


def test_no_check_fires_on_a_good_row():
    assert _fired(GOOD_ROW) == []
    assert health.row_problems(GOOD_ROW) == []


@pytest.mark.parametrize(("name", "severity", "fields"), BAD_ROWS, ids=[f"{n}-{s}" for n, s, _f in BAD_ROWS])
def test_each_check_fires_alone_on_its_bad_row(name, severity, fields):
    row = dict(GOOD_ROW, **fields)
    (check,) = _fired(row)
    assert (check.name, check.severity) == (name, severity)
    (problem,) = health.row_problems(row)
    assert (problem["host"], problem["check"], problem["severity"]) == ("gw", name, severity)
    assert problem["message"] and problem["remedy"]


@pytest.mark.parametrize(
    ("fields", "value", "threshold"),
    [
        ({"certificate_days": -1.5}, -1.5, 30),
        ({"certificate_days": 29.9}, 29.9, 30),
        ({"key_days": 6.5}, 6.5, 7),
        ({"restarts": 4}, 4, 3),
        ({"last_data_age": 61.0}, 61.0, 60),
    ],
)
def test_threshold_checks_report_the_value_and_the_threshold(fields, value, threshold):
    (problem,) = health.row_problems(dict(GOOD_ROW, **fields))
    assert (problem["value"], problem["threshold"]) == (value, threshold)


def test_a_gate_that_fires_is_the_only_problem_and_the_fallback_only_speaks_alone():
    every_fault = dict(GOOD_ROW)
    for _name, _severity, fields in BAD_ROWS:
        every_fault.update(fields)
    assert [p["check"] for p in health.row_problems(every_fault)] == ["reachable"]
    read = dict(every_fault, reachable=True, error=None, unsupported=None, status_state="ok")
    problems = health.row_problems(read)
    assert len(problems) > 1 and "healthy" not in [p["check"] for p in problems]  # the fallback speaks last, alone
    severities = [p["severity"] for p in problems]
    assert severities == sorted(severities, key=health.SEVERITY_RANK.get) and severities[-1] == "warning"


@pytest.mark.parametrize(
    ("days", "level"), [(None, "unknown"), (-1, "critical"), (0, "critical"), (6.9, "warning"), (7, "ok")]
)
def test_days_level(days, level):
    assert health.days_level(days, 7) == level
