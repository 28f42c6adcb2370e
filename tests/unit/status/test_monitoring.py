"""Checks of monitoring/: alert rules (promtool check + unit test), dashboard metrics against Contract 4, and the
scrape config example and generator."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
MON = REPO / "monitoring"
DASHBOARD = MON / "grafana" / "pointperfect-forwarder.json"
ALERTS = MON / "prometheus" / "alerts.yml"
PREFIX = "pointperfect_forwarder_"
PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "count",
    "avg",
    "rate",
    "increase",
    "changes",
    "time",
    "vector",
    "label_values",
    "by",
    "without",
    "or",
    "and",
    "unless",
    "on",
    "ignoring",
    "job",
    "instance",
    "stream",
    "key",
}
METRIC = re.compile(rf"\b({PREFIX}[a-z_]+)\b")


def contract4_metrics() -> set:
    """Metric names listed in docs/architecture.md Contract 4 (the single source of truth)."""
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Contract 4", 1)[1].split("\n## ", 1)[0]
    names = {PREFIX + m for m in re.findall(r"`([a-z_]+)(?:\{[^}]*\})?`", section)}
    assert len(names) >= 15, names
    return names


def dashboard_exprs(dash) -> list:
    exprs = []
    for panel in dash["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            exprs.append(var["query"]["query"] if isinstance(var["query"], dict) else var["query"])
    return exprs


def promtool():
    path = shutil.which("promtool")
    if not path:
        pytest.skip("promtool not installed (Debian package prometheus)")
    return path


def test_dashboard_queries_only_contract_metrics_and_covers_the_issue():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and dash["panels"]
    known = contract4_metrics()
    used = set()
    for expr in dashboard_exprs(dash):
        used |= set(METRIC.findall(expr))
        # every identifier that is not a PromQL function, keyword or label is a metric: Contract 4's or `up`
        stripped = re.sub(r"\[[0-9a-z]+\]", "", re.sub(r'"[^"]*"', '""', expr))
        for ident in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", stripped):
            assert ident in known | {"up"} | PROMQL_WORDS, (ident, expr)
    assert used <= known, used - known
    for needed in (
        "up",
        "last_data_age_seconds",
        "input_bytes_total",
        "reconnects_total",
        "key_valid_until_timestamp_seconds",
        "certificate_not_after_timestamp_seconds",
    ):
        assert PREFIX + needed in used, needed
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and panel["gridPos"]["w"] <= 24


def test_alert_rules_cover_the_issue_and_use_contract_metrics():
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    by_name = {r["alert"]: r["expr"] for r in rules}
    known = contract4_metrics()
    for expr in by_name.values():
        assert set(METRIC.findall(expr)) <= known, expr
    assert "> 60" in by_name["PointPerfectNoData"]
    assert "7 * 86400" in by_name["PointPerfectKeyExpiry"]
    assert "30 * 86400" in by_name["PointPerfectCertificateExpiry"]
    assert "start_time_seconds" in by_name["PointPerfectForwarderRestartLoop"]


def test_promtool_check_rules():
    proc = subprocess.run([promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 6 rules found" in proc.stdout


def test_promtool_unit_test_of_alerts():
    test_file = Path(__file__).with_name("alerts_test.yml")
    proc = subprocess.run(
        [promtool(), "test", "rules", str(test_file)], capture_output=True, text=True, check=False, cwd=test_file.parent
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scrape_example_is_valid(tmp_path):
    shutil.copy(MON / "prometheus" / "scrape-example.yml", tmp_path / "prometheus.yml")
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    proc = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_scrape_config_generated_from_inventory(tmp_path, ansible_env):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[pointperfect_gateways]\ngw-b ansible_host=gw-b.lab.invalid\n"
        "gw-a pointperfect_metrics_host=10.9.9.9 pointperfect_metrics_port=9700\n"
        "[other]\nnot-a-gateway\n"
    )
    out = tmp_path / "out" / "prometheus.yml"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory),
            str(REPO / "playbooks" / "prometheus_scrape_config.yml"),
            "-e",
            f"pointperfect_scrape_file={out}",
        ],
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = yaml.safe_load(out.read_text())
    job = config["scrape_configs"][0]
    assert job["job_name"] == "pointperfect-forwarder"
    assert job["static_configs"] == [
        {"targets": ["10.9.9.9:9700"], "labels": {"gateway": "gw-a"}},
        {"targets": ["gw-b.lab.invalid:9661"], "labels": {"gateway": "gw-b"}},
    ]
    if shutil.which("promtool"):
        shutil.copy(ALERTS, out.parent / "alerts.yml")
        check = subprocess.run(["promtool", "check", "config", str(out)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
