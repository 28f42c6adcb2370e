"""Checks of monitoring/: alert rules (promtool check + unit test), dashboard metrics against Contract 4, the scrape
config example, the file_sd targets generator and the node_exporter textfile exporter."""

import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
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


def _generate_targets(tmp_path, ansible_env, inventory_text, *extra):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(inventory_text)
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory),
            str(REPO / "playbooks" / "prometheus_scrape_config.yml"),
            *extra,
        ],
        env=ansible_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_file_sd_targets_generated_from_inventory(tmp_path, ansible_env):
    """A file_sd targets file (not a prometheus.yml): one target per gateway, the address Prometheus can reach, and a
    warning naming the gateways whose metrics listen on loopback only (the role's default)."""
    prometheus_dir = tmp_path / "prometheus"
    (prometheus_dir / "targets").mkdir(parents=True)
    shutil.copy(MON / "prometheus" / "scrape-example.yml", prometheus_dir / "prometheus.yml")
    shutil.copy(ALERTS, prometheus_dir / "alerts.yml")
    users_config = (prometheus_dir / "prometheus.yml").read_text()
    out = prometheus_dir / "targets" / "pointperfect-fleet.yml"
    proc = _generate_targets(
        tmp_path,
        ansible_env,
        "[pointperfect_gateways]\n"
        "gw-b ansible_host=gw-b.lab.invalid\n"
        "gw-a pointperfect_metrics_host=10.9.9.9 pointperfect_metrics_port=9700\n"
        "gw-c ansible_host=192.0.2.3 pointperfect_metrics_address=10.8.0.3\n"
        "gw-d ansible_host=192.0.2.4 pointperfect_metrics_address=0.0.0.0 pointperfect_metrics_port=9662\n"
        "[other]\nnot-a-gateway\n",
        "-e",
        f"pointperfect_targets_file={out}",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert yaml.safe_load(out.read_text()) == [
        {"targets": ["10.9.9.9:9700"], "labels": {"gateway": "gw-a"}},
        {"targets": ["gw-b.lab.invalid:9661"], "labels": {"gateway": "gw-b"}},
        {"targets": ["10.8.0.3:9661"], "labels": {"gateway": "gw-c"}},
        {"targets": ["192.0.2.4:9662"], "labels": {"gateway": "gw-d"}},
    ]
    assert (prometheus_dir / "prometheus.yml").read_text() == users_config
    assert "1 gateway(s) serve metrics on 127.0.0.1 only" in proc.stdout and "gw-b." in proc.stdout
    if shutil.which("promtool"):
        check = subprocess.run(
            ["promtool", "check", "config", str(prometheus_dir / "prometheus.yml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr

    as_json = tmp_path / "targets.json"
    proc = _generate_targets(
        tmp_path,
        ansible_env,
        "[pointperfect_gateways]\ngw-x ansible_host=192.0.2.9 pointperfect_metrics_address=192.0.2.9\n",
        "-e",
        f"pointperfect_targets_file={as_json}",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(as_json.read_text()) == [{"targets": ["192.0.2.9:9661"], "labels": {"gateway": "gw-x"}}]
    assert "127.0.0.1 only" not in proc.stdout


def test_file_sd_generator_refuses_an_inventory_without_gateways(tmp_path, ansible_env):
    proc = _generate_targets(
        tmp_path, ansible_env, "[other]\nnot-a-gateway\n", "-e", f"pointperfect_targets_file={tmp_path / 't.yml'}"
    )
    assert proc.returncode != 0 and "no host in group pointperfect_gateways" in proc.stdout
    assert not (tmp_path / "t.yml").exists()


TEXTFILE = MON / "textfile"
SAMPLE_METRICS = (
    "# HELP pointperfect_forwarder_up The forwarder process is running.\n"
    "# TYPE pointperfect_forwarder_up gauge\n"
    "pointperfect_forwarder_up 1.0\n"
    "# HELP pointperfect_forwarder_reconnects_total Input reconnects.\n"
    "# TYPE pointperfect_forwarder_reconnects_total counter\n"
    "pointperfect_forwarder_reconnects_total 2.0\n"
)


class _Metrics(http.server.BaseHTTPRequestHandler):
    body = SAMPLE_METRICS

    def do_GET(self):
        data = self.body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _textfile(url, directory):
    return subprocess.run(
        [sys.executable, str(TEXTFILE / "pointperfect-metrics-textfile.py"), "--url", url, "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_textfile_exporter_copies_the_metrics_and_reports_down(tmp_path):
    """The node_exporter route: the metrics copied as they are while the forwarder answers, `up 0` once it does not,
    one *.prom file replaced atomically (no temporary file left)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        run = _textfile(url, tmp_path)
        assert run.returncode == 0, run.stderr
        assert (tmp_path / "pointperfect.prom").read_text() == SAMPLE_METRICS
        if shutil.which("promtool"):
            check = subprocess.run(
                ["promtool", "check", "metrics"], input=SAMPLE_METRICS, capture_output=True, text=True, check=False
            )
            assert check.returncode == 0, check.stdout + check.stderr
    finally:
        server.shutdown()
        server.server_close()
    run = _textfile(url, tmp_path)
    assert run.returncode == 0 and "writing pointperfect_forwarder_up 0" in run.stderr
    down = (tmp_path / "pointperfect.prom").read_text()
    assert down.splitlines()[-1] == "pointperfect_forwarder_up 0" and "reconnects" not in down
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pointperfect.prom"]


def test_textfile_units_fit_the_script_and_the_role_defaults():
    service = (TEXTFILE / "pointperfect-metrics-textfile.service").read_text()
    timer = (TEXTFILE / "pointperfect-metrics-textfile.timer").read_text()
    defaults = yaml.safe_load((REPO / "roles" / "gateway" / "defaults" / "main.yml").read_text())
    address, port = defaults["pointperfect_metrics_address"], defaults["pointperfect_metrics_port"]
    assert f"--url http://{address}:{port}/metrics" in service
    assert "/usr/local/libexec/pointperfect-metrics-textfile.py" in service and "Type=oneshot" in service
    assert "IPAddressAllow=localhost" in service and "OnUnitActiveSec=15s" in timer
    readme = (MON / "README.md").read_text()
    for name in ("pointperfect-metrics-textfile.py", "pointperfect-metrics-textfile.service", "timer"):
        assert name in readme
    if shutil.which("systemd-analyze"):
        check = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(TEXTFILE / "pointperfect-metrics-textfile.timer")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
