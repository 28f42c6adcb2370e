# -*- coding: utf-8 -*-
# Controller side of the fleet status report: gateway_info results -> rows, threshold problems with remedies,
# and the writers (terminal table, self-contained HTML with inline SVG, JSON data).

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import html
import json
import time

from ansible_collections.gnss.pointperfect.plugins.module_utils._credentials import iso, parse_iso

REPORT_FORMAT = 1
DAY = 86400.0
# Samples of bytes/s kept per gateway across runs (one sample per run; see fleet_report()).
HISTORY_LENGTH = 48

DEFAULT_THRESHOLDS = {
    "renew_before_days": 30,  # certificate expiry warning, same meaning as the ztp module's option
    "max_data_age": 60,  # seconds without correction data before a gateway is failing
    "key_warn_days": 7,  # days before the latest dynamic key runs out
    "max_restarts": 3,  # systemd NRestarts above this is a restart loop
}

SEVERITY_RANK = {"critical": 0, "warning": 1, "ok": 2}
# unsupported: the gateway cannot run the forwarder (the preflight of gateway_info found why, e.g. Python 3.9)
HEALTH_RANK = {"critical": 0, "unsupported": 1, "unknown": 2, "warning": 3, "ok": 4}


def _dict(value):
    return value if isinstance(value, dict) else {}


def _num(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


def thresholds_with_defaults(thresholds=None):
    """Merge user thresholds over the defaults; values must be numbers."""
    merged = dict(DEFAULT_THRESHOLDS)
    for key, value in _dict(thresholds).items():
        if value is None:
            continue
        if key not in DEFAULT_THRESHOLDS:
            raise ValueError("unknown threshold %r (known: %s)" % (key, ", ".join(sorted(DEFAULT_THRESHOLDS))))
        try:
            merged[key] = float(value)
        except (TypeError, ValueError):
            raise ValueError("threshold %s must be a number, got %r" % (key, value)) from None
    return merged


def _latest_key(credentials, status_keys, now):
    """Latest valid_until over credentials.json keys and the forwarder's keys (it may hold fresher ones)."""
    candidates = []
    for source in (_dict(credentials.get("dynamickeys")), _dict(status_keys)):
        for name in ("current", "next"):
            until = parse_iso(_dict(source.get(name)).get("valid_until"))
            if until is not None:
                candidates.append(until)
    if not candidates:
        return None, None
    until = max(candidates)
    return iso(until), round((until - now) / DAY, 2)


def gateway_row(host, result, now=None):
    """Flatten one registered gateway_info result (or None / an unreachable or failed result) into a row."""
    now = time.time() if now is None else now
    result = _dict(result)
    row = {"host": host, "reachable": True, "error": None}
    if not result or result.get("unreachable"):
        row.update(reachable=False, error=result.get("msg") or "host unreachable")
        return row
    gateway = result.get("gateway")
    if result.get("failed") or not isinstance(gateway, dict):
        row["error"] = result.get("msg") or "gateway_info returned no data"
        return row
    creds = _dict(gateway.get("credentials"))
    status = _dict(gateway.get("status"))
    service = _dict(gateway.get("service"))
    data = _dict(status.get("data"))
    inp = _dict(data.get("input"))
    out = _dict(data.get("output"))
    receiver = _dict(data.get("receiver"))
    region = _dict(data.get("region"))
    lband = _dict(data.get("lband"))
    keys = _dict(creds.get("dynamickeys"))
    key_until, key_days = _latest_key(creds, data.get("keys"), now)
    # The preflight (same checks as the role's first probe): a gateway whose forwarder does not run and that fails
    # it is unsupported, with the reasons; a running forwarder proves the platform good enough.
    preflight = [
        p.get("message")
        for p in _dict(gateway.get("preflight")).get("problems") or []
        if isinstance(p, dict) and p.get("message")
    ]
    row.update(
        unsupported=preflight if preflight and service.get("state") != "active" else None,
        collected_at=gateway.get("collected_at"),
        credentials_state=creds.get("state"),
        credentials_error=creds.get("error"),
        hardware_id=creds.get("hardware_id"),
        plan=creds.get("plan"),
        service=creds.get("service"),
        client_id=creds.get("client_id"),
        last_confirmed_at=creds.get("last_confirmed_at"),
        certificate_not_after=creds.get("certificate_not_after") or data.get("certificate_not_after"),
        certificate_days=_num(creds.get("certificate_days_remaining")),
        key_current=keys.get("current"),
        key_next=keys.get("next"),
        key_valid_until=key_until,
        key_days=key_days,
        forwarder_state=service.get("state"),
        forwarder_unit=service.get("name"),
        forwarder_sub_state=service.get("sub_state"),
        forwarder_error=service.get("error"),
        restarts=_num(service.get("n_restarts")),
        forwarder_started=service.get("exec_main_start_timestamp"),
        status_state=status.get("state"),
        status_error=status.get("error"),
        status_age=_num(status.get("age")),
        healthy=data.get("healthy") if isinstance(data.get("healthy"), bool) else None,
        version=data.get("version"),
        input_type=inp.get("type"),
        input_state=inp.get("state"),
        endpoint=inp.get("endpoint"),
        last_data_age=_num(inp.get("last_data_age")),
        reconnects=_num(inp.get("reconnects")),
        input_error=inp.get("last_error"),
        output_type=out.get("type"),
        output_state=out.get("state"),
        frames_dropped=_num(out.get("dropped_frames")),
        bytes_per_second=_num(data.get("bytes_per_second")),
        receiver_config_state=receiver.get("config_state"),
        receiver_resets=_num(receiver.get("resets_detected")),
        # Contract 3: the region the forwarder chose and why (position | fixed_position | inventory | plan)
        region=region.get("selected"),
        region_source=region.get("source"),
        regions=region.get("available") if isinstance(region.get("available"), list) else creds.get("regions"),
        # an MQTT forwarder that reports a region object but has not chosen one yet (no position so far)
        region_pending=bool(region) and region.get("selected") is None and inp.get("type") == "mqtt",
        lband_mode=lband.get("mode"),
        lband_d9s_state=lband.get("d9s_state"),
        lband_frequency_hz=_num(lband.get("frequency_hz")),
        lband_pmp_frames=_num(lband.get("pmp_frames")),
        last_error=data.get("last_error") or inp.get("last_error"),
    )
    return row


def _problem(row, severity, check, message, remedy, *, value=None, threshold=None):
    return {
        "host": row["host"],
        "severity": severity,
        "check": check,
        "message": message,
        "remedy": remedy,
        "value": value,
        "threshold": threshold,
    }


def row_problems(row, thresholds=None):
    """Threshold and state checks for one row -> problems (each with its remedy), worst first."""
    t = thresholds_with_defaults(thresholds)
    found = []
    add = found.append
    if not row.get("reachable", True):
        add(
            _problem(
                row,
                "critical",
                "reachable",
                "host unreachable: %s" % row.get("error"),
                "check the network path and SSH access to the gateway",
            )
        )
        return found
    if row.get("error"):
        add(
            _problem(
                row,
                "critical",
                "collect",
                "status could not be collected: %s" % row["error"],
                "check Python 3 on the gateway and privileges (become) for the status playbook",
            )
        )
        return found

    if row.get("unsupported"):
        add(
            _problem(
                row,
                "critical",
                "unsupported",
                "unsupported: %s" % ". ".join(row["unsupported"]),
                "fix the cause named (most often: upgrade the gateway to a release with Python 3.10+), then run "
                "gnss.pointperfect.provision",
            )
        )
        return found

    cstate = row.get("credentials_state")
    if cstate == "missing":
        add(
            _problem(
                row,
                "critical",
                "credentials",
                "not provisioned (no credentials.json)",
                "run the gnss.pointperfect.provision playbook for this gateway",
            )
        )
    elif cstate in ("corrupt", "unreadable"):
        add(
            _problem(
                row,
                "critical",
                "credentials",
                "credentials.json %s: %s" % (cstate, row.get("credentials_error")),
                "run gnss.pointperfect.provision (with become for unreadable files) to rewrite the credentials",
            )
        )

    days = row.get("certificate_days")
    if days is not None:
        if days <= 0:
            add(
                _problem(
                    row,
                    "critical",
                    "certificate",
                    "certificate expired %.1f days ago" % -days,
                    "run gnss.pointperfect.provision to renew the certificate",
                    value=days,
                    threshold=t["renew_before_days"],
                )
            )
        elif days < t["renew_before_days"]:
            add(
                _problem(
                    row,
                    "warning",
                    "certificate",
                    "certificate expires in %.1f days (< %g)" % (days, t["renew_before_days"]),
                    "run gnss.pointperfect.provision; it renews credentials within renew_before_days",
                    value=days,
                    threshold=t["renew_before_days"],
                )
            )

    kdays = row.get("key_days")
    if kdays is not None:
        if kdays <= 0:
            add(
                _problem(
                    row,
                    "critical",
                    "keys",
                    "all dynamic keys expired",
                    "run gnss.pointperfect.provision to fetch fresh dynamic keys (and check the MQTT key topic)",
                    value=kdays,
                    threshold=t["key_warn_days"],
                )
            )
        elif kdays < t["key_warn_days"]:
            add(
                _problem(
                    row,
                    "warning",
                    "keys",
                    "latest dynamic key expires in %.1f days (< %g)" % (kdays, t["key_warn_days"]),
                    "run gnss.pointperfect.provision to refresh the dynamic keys",
                    value=kdays,
                    threshold=t["key_warn_days"],
                )
            )

    fstate = row.get("forwarder_state")
    if fstate == "absent" and cstate != "missing":
        add(
            _problem(
                row,
                "critical",
                "service",
                "forwarder unit %s not installed" % row.get("forwarder_unit"),
                "run gnss.pointperfect.provision (gateway role) to install the forwarder",
            )
        )
    elif fstate in ("inactive", "failed", "deactivating"):
        add(
            _problem(
                row,
                "critical",
                "service",
                "forwarder %s (%s)" % (fstate, row.get("forwarder_sub_state")),
                "journalctl -u %s; then systemctl restart %s" % (row.get("forwarder_unit"), row.get("forwarder_unit")),
            )
        )
    restarts = row.get("restarts")
    if restarts is not None and restarts > t["max_restarts"]:
        add(
            _problem(
                row,
                "warning",
                "restarts",
                "forwarder restarted %d times (> %g)" % (restarts, t["max_restarts"]),
                "restart loop: read journalctl -u %s for the cause" % row.get("forwarder_unit"),
                value=restarts,
                threshold=t["max_restarts"],
            )
        )

    sstate = row.get("status_state")
    if cstate == "ok" or sstate not in ("missing", None):
        if sstate == "missing":
            add(
                _problem(
                    row,
                    "critical",
                    "status",
                    "forwarder status file missing",
                    "start the forwarder (systemctl start %s) and check its health.status_file"
                    % row.get("forwarder_unit"),
                )
            )
        elif sstate == "stale":
            add(
                _problem(
                    row,
                    "critical",
                    "status",
                    "forwarder status not updated for %ds" % (row.get("status_age") or 0),
                    "forwarder hung or stopped: journalctl -u %s; systemctl restart %s"
                    % (row.get("forwarder_unit"), row.get("forwarder_unit")),
                )
            )
        elif sstate in ("corrupt", "unreadable"):
            add(
                _problem(
                    row,
                    "warning",
                    "status",
                    "status file %s: %s" % (sstate, row.get("status_error")),
                    "check the forwarder version and the status file permissions",
                )
            )

    if sstate == "ok":
        istate = row.get("input_state")
        age = row.get("last_data_age")
        if istate == "waiting_for_position":
            add(
                _problem(
                    row,
                    "warning",
                    "position",
                    "waiting for a position fix: the NTRIP caster sends nothing before a GGA",
                    "the receiver has no fix: check the antenna and its view of the sky, or set "
                    "pointperfect_fixed_position (lat, lon, alt) for this gateway",
                )
            )
        elif istate == "auth_failed":
            add(
                _problem(
                    row,
                    "critical",
                    "input",
                    "credentials rejected by %s" % row.get("endpoint"),
                    "re-run gnss.pointperfect.provision (credentials were rotated or revoked)",
                )
            )
        elif age is None and istate != "connected":
            add(
                _problem(
                    row,
                    "critical",
                    "data",
                    "no correction data received (input %s)" % istate,
                    "check network access to %s and the forwarder log" % row.get("endpoint"),
                )
            )
        if age is not None and age > t["max_data_age"]:
            add(
                _problem(
                    row,
                    "critical",
                    "data",
                    "last data %ds ago (> %g s)" % (age, t["max_data_age"]),
                    "check the input (%s, %s) and network access to %s"
                    % (row.get("input_type"), istate, row.get("endpoint")),
                    value=age,
                    threshold=t["max_data_age"],
                )
            )
        if row.get("output_state") not in (None, "open", "connected"):
            add(
                _problem(
                    row,
                    "warning",
                    "output",
                    "output %s is %s" % (row.get("output_type"), row.get("output_state")),
                    "check the receiver link (device path, cable, permissions)",
                )
            )
        if istate == "connected" and row.get("region_pending"):
            add(
                _problem(
                    row,
                    "warning",
                    "region",
                    "no correction region chosen yet (plan regions: %s): only the key topic is subscribed"
                    % (", ".join(row.get("regions") or []) or "-"),
                    "the receiver has no fix: check the antenna and its view of the sky, or set "
                    "pointperfect_fixed_position or pointperfect_region for this gateway",
                )
            )
        if row.get("lband_d9s_state") == "failed":
            add(
                _problem(
                    row,
                    "warning",
                    "lband",
                    "NEO-D9S configuration failed",
                    "check pointperfect_lband_device, pointperfect_lband_baudrate and pointperfect_lband_port "
                    "(the D9S port the gateway is wired to)",
                )
            )
        if row.get("receiver_config_state") == "failed":
            add(
                _problem(
                    row,
                    "warning",
                    "receiver",
                    "receiver configuration failed",
                    "check receiver.port/baudrate in forwarder.json and the receiver model",
                )
            )
        if row.get("healthy") is False and not found:
            add(
                _problem(
                    row,
                    "warning",
                    "healthy",
                    "forwarder reports unhealthy: %s" % row.get("last_error"),
                    "journalctl -u %s" % row.get("forwarder_unit"),
                )
            )
    found.sort(key=lambda p: SEVERITY_RANK[p["severity"]])
    return found


def _health(row, problems):
    if not problems:
        return "ok"
    if not row.get("reachable", True):
        return "unknown"
    if row.get("unsupported"):
        return "unsupported"
    return "critical" if any(p["severity"] == "critical" for p in problems) else "warning"


def sort_problems(problems):
    return sorted(problems, key=lambda p: (SEVERITY_RANK[p["severity"]], p["host"], p["check"]))


def fleet_health(results, thresholds=None, now=None):
    """{host: registered gateway_info result or None} -> all problems, worst first, each with its remedy."""
    problems = []
    for host in sorted(_dict(results)):
        problems.extend(row_problems(gateway_row(host, results[host], now), thresholds))
    return sort_problems(problems)


def previous_history(previous):
    """{host: [[iso, bytes_per_second], ...]} from an earlier JSON report (text or dict); tolerant of junk."""
    if isinstance(previous, str):
        try:
            previous = json.loads(previous) if previous.strip() else {}
        except ValueError:
            return {}
    history = {}
    for gw in _dict(previous).get("gateways") or []:
        if not isinstance(gw, dict) or not isinstance(gw.get("host"), str):
            continue
        points = [
            p
            for p in gw.get("history") or []
            if isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and _num(p[1]) is not None
        ]
        history[gw["host"]] = points
    return history


def fleet_report(results, thresholds=None, previous=None, now=None, history_length=HISTORY_LENGTH):
    """The whole report (the JSON file's content): totals, problems, and rows worst first with bytes/s history.

    History: each run appends one bytes/s sample per gateway to the samples found in the previous report
    (`previous`, its JSON text or dict), keeping the last `history_length`.
    """
    now = time.time() if now is None else now
    t = thresholds_with_defaults(thresholds)
    old = previous_history(previous)
    rows, problems = [], []
    for host in sorted(_dict(results)):
        row = gateway_row(host, results[host], now)
        row_probs = row_problems(row, t)
        row["problems"] = row_probs
        row["health"] = _health(row, row_probs)
        points = list(old.get(host, []))
        if row.get("bytes_per_second") is not None:
            stamp = row.get("collected_at") or iso(now)
            if not points or points[-1][0] != stamp:
                points.append([stamp, row["bytes_per_second"]])
        row["history"] = points[-int(history_length) :]
        rows.append(row)
        problems.extend(row_probs)
    rows.sort(key=lambda r: (HEALTH_RANK[r["health"]], -len(r["problems"]), r["host"]))
    return {
        "format": REPORT_FORMAT,
        "generated_at": iso(now),
        "thresholds": t,
        "totals": _totals(rows, problems),
        "problems": sort_problems(problems),
        "gateways": rows,
    }


def _soonest(rows, field):
    best = None
    for row in rows:
        if row.get(field) is not None and (best is None or row[field] < best[1]):
            best = (row["host"], row[field])
    return {"host": best[0], "days": best[1]} if best else None


def _totals(rows, problems):
    count = {h: 0 for h in HEALTH_RANK}
    for row in rows:
        count[row["health"]] += 1
    return {
        "gateways": len(rows),
        "ok": count["ok"],
        "warning": count["warning"],
        "critical": count["critical"],
        "unknown": count["unknown"],
        "unsupported": count["unsupported"],
        "reachable": sum(1 for r in rows if r.get("reachable")),
        "forwarders_active": sum(1 for r in rows if r.get("forwarder_state") == "active"),
        "inputs_connected": sum(1 for r in rows if r.get("input_state") == "connected"),
        "bytes_per_second": round(sum(r.get("bytes_per_second") or 0 for r in rows), 1),
        "problems": len(problems),
        "critical_problems": sum(1 for p in problems if p["severity"] == "critical"),
        "soonest_certificate": _soonest(rows, "certificate_days"),
        "soonest_key": _soonest(rows, "key_days"),
    }


# ---------------------------------------------------------------- terminal


def _fmt_days(days):
    return "-" if days is None else "%.0f" % days


def _fmt(value, pattern="%s"):
    return "-" if value is None else pattern % value


def region_text(row):
    """The chosen region and why, e.g. "us (position)"; "waiting" while an MQTT forwarder has no position."""
    if row.get("region"):
        return "%s (%s)" % (row["region"], row.get("region_source") or "?")
    return "waiting" if row.get("region_pending") else None


def service_text(row):
    """What the forwarder runs: its input type, or the L-band mode ("L-band d9s", "L-band keys_only")."""
    if row.get("lband_mode") not in (None, "off"):
        return "L-band %s" % row["lband_mode"]
    return row.get("input_type") or row.get("service")


TABLE_COLUMNS = (
    "HOST",
    "HEALTH",
    "PLAN/SVC",
    "REGION",
    "CERT d",
    "KEY d",
    "FORWARDER",
    "RST",
    "INPUT",
    "DATA AGE",
    "B/s",
    "DROPPED",
)


def table_rows(report):
    out = []
    for r in report["gateways"]:
        if not r.get("reachable"):
            out.append((r["host"], r["health"].upper(), "-", "-", "-", "-", "unreachable", "-", "-", "-", "-", "-"))
            continue
        if r.get("unsupported"):  # the reason is in the problems below the table
            out.append((r["host"], r["health"].upper(), "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"))
            continue
        out.append(
            (
                r["host"],
                r["health"].upper(),
                "%s/%s" % (r.get("plan") or "-", service_text(r) or "-")
                if r.get("plan")
                else (r.get("credentials_state") or "-"),
                region_text(r) or "-",
                _fmt_days(r.get("certificate_days")),
                _fmt_days(r.get("key_days")),
                r.get("forwarder_state") or "-",
                _fmt(r.get("restarts"), "%d"),
                r.get("input_state") or (r.get("status_state") or "-"),
                _fmt(r.get("last_data_age"), "%.0fs"),
                _fmt(r.get("bytes_per_second"), "%.0f"),
                _fmt(r.get("frames_dropped"), "%d"),
            )
        )
    return out


def render_table(report):
    """Plain-text table (worst first) followed by the failing thresholds with their remedies."""
    rows = [TABLE_COLUMNS] + table_rows(report)
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    tot = report["totals"]
    lines.append("")
    lines.append(
        "%d gateways: %d ok, %d warning, %d critical, %d unreachable%s; %d forwarders active; %.0f B/s total"
        % (
            tot["gateways"],
            tot["ok"],
            tot["warning"],
            tot["critical"],
            tot["unknown"],
            ", %d unsupported" % tot["unsupported"] if tot.get("unsupported") else "",
            tot["forwarders_active"],
            tot["bytes_per_second"],
        )
    )
    if report["problems"]:
        lines.append("")
        lines.append("Problems (worst first):")
        for p in report["problems"]:
            lines.append("  %-8s %s: %s" % (p["severity"].upper(), p["host"], p["message"]))
            lines.append("           remedy: %s" % p["remedy"])
    else:
        lines.append("No problems.")
    return "\n".join(lines)


# ---------------------------------------------------------------- HTML

CSS = """
:root{--ok:#1a7f37;--warning:#9a6700;--critical:#cf222e;--unknown:#6e7781;--unsupported:#8250df;font-family:system-ui,sans-serif}
body{margin:1.5rem;color:#1f2328;background:#fff}
h1{font-size:1.4rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.meta{color:#59636e;font-size:.85rem}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin-top:1rem}
.card{border:1px solid #d1d9e0;border-radius:6px;padding:.5rem .9rem;min-width:7rem}
.card b{display:block;font-size:1.4rem}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.8rem}
th,td{border-bottom:1px solid #d1d9e0;padding:.3rem .5rem;text-align:left;vertical-align:middle;white-space:nowrap}
th{background:#f6f8fa}td.err{white-space:normal;min-width:12rem}
.badge{display:inline-block;border-radius:1em;padding:0 .55em;color:#fff;font-weight:600;font-size:.8rem}
.b-ok{background:var(--ok)}.b-warning{background:var(--warning)}.b-critical{background:var(--critical)}
.b-unknown{background:var(--unknown)}.b-unsupported{background:var(--unsupported)}
td.s-ok{color:var(--ok)}td.s-warning{color:var(--warning);font-weight:600}
td.s-critical{color:var(--critical);font-weight:600}td.s-unknown{color:var(--unknown)}
tr.h-critical{background:#ffebe9}tr.h-warning{background:#fff8c5}tr.h-unknown{background:#f6f8fa}
tr.h-unsupported{background:#fbefff}
ol.problems li{margin:.3rem 0}.remedy{color:#59636e}
svg text{font-family:system-ui,sans-serif}
"""


def _e(value):
    return html.escape("-" if value is None else str(value), quote=True)


def _level(value, warn, crit_at=0):
    """Days remaining -> ok/warning/critical class."""
    if value is None:
        return "unknown"
    if value <= crit_at:
        return "critical"
    return "warning" if value < warn else "ok"


def _state_class(row, field):
    value = row.get(field)
    good = {
        "forwarder_state": ("active",),
        "input_state": ("connected",),
        "status_state": ("ok",),
        "output_state": ("open", "connected"),
        "credentials_state": ("ok",),
        "receiver_config_state": ("applied", "disabled"),
    }[field]
    bad = {
        "forwarder_state": ("failed", "inactive", "absent"),
        "input_state": ("auth_failed", "stopped"),
        "status_state": ("missing", "stale"),
        "output_state": ("closed", "error"),
        "credentials_state": ("missing", "corrupt", "unreadable"),
        "receiver_config_state": ("failed",),
    }[field]
    if value in good:
        return "ok"
    if value in bad:
        return "critical"
    return "unknown" if value is None else "warning"


def sparkline_svg(points, width=120, height=26):
    """Inline SVG polyline of bytes/s samples; a single sample is drawn as a dot."""
    values = [float(p[1]) for p in points]
    if not values:
        return "-"
    top = max(values) or 1.0
    n = len(values)
    step = (width - 4) / (n - 1) if n > 1 else 0
    coords = [(2 + i * step, height - 2 - (v / top) * (height - 4)) for i, v in enumerate(values)]
    label = "bytes per second, %d samples, last %.0f, max %.0f" % (n, values[-1], max(values))
    parts = [
        '<svg class="spark" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">'
        % (width, height, width, height, _e(label)),
        "<title>%s</title>" % _e(label),
    ]
    if n > 1:
        parts.append(
            '<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="%s"/>'
            % " ".join("%.1f,%.1f" % c for c in coords)
        )
    parts.append('<circle cx="%.1f" cy="%.1f" r="2" fill="#0969da"/>' % coords[-1])
    parts.append("</svg>")
    return "".join(parts)


def timeline_svg(report, now=None):
    """Inline SVG: per gateway, certificate (circle) and latest key (square) expiry on a days axis."""
    t = report["thresholds"]
    rows = [r for r in report["gateways"] if r.get("certificate_days") is not None or r.get("key_days") is not None]
    if not rows:
        return "<p>No expiry dates known.</p>"
    longest = max(max(r.get("certificate_days") or 0, r.get("key_days") or 0) for r in rows)
    horizon = max(60.0, min(400.0, longest * 1.05 + 5))
    left, width, row_h = 150, 600, 22
    top = 40
    height = top + row_h * len(rows) + 10
    total_w = left + width + 20

    def x(days):
        return left + max(0.0, min(days, horizon)) / horizon * width

    out = [
        '<svg class="timeline" width="%d" height="%d" viewBox="0 0 %d %d" role="img" '
        'aria-label="certificate and key expiry timeline in days from now">' % (total_w, height, total_w, height),
        "<title>Certificate and dynamic key expiry, days from now</title>",
    ]
    marks = (
        (0, "now"),
        (t["key_warn_days"], "%g d keys" % t["key_warn_days"]),
        (t["renew_before_days"], "%g d renew" % t["renew_before_days"]),
        (horizon, "%.0f d" % horizon),
    )
    for n, (days, label) in enumerate(marks):
        label_y = 12 if n % 2 == 0 else 26  # staggered so close marks do not overlap
        out.append(
            '<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#8c959f" stroke-dasharray="3,3"/>'
            % (x(days), label_y + 4, x(days), height - 6)
        )
        out.append(
            '<text x="%.1f" y="%d" font-size="10" text-anchor="middle" fill="#59636e">%s</text>'
            % (x(days), label_y, _e(label))
        )
    for i, r in enumerate(rows):
        y = top + i * row_h + row_h / 2
        out.append(
            '<text x="%d" y="%.1f" font-size="11" text-anchor="end" dominant-baseline="middle">%s</text>'
            % (left - 8, y, _e(r["host"]))
        )
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eaeef2"/>' % (left, y, left + width, y))
        cert = r.get("certificate_days")
        if cert is not None:
            level = _level(cert, t["renew_before_days"])
            out.append(
                '<circle cx="%.1f" cy="%.1f" r="6" fill="var(--%s)"><title>%s certificate: %.1f days (%s)'
                "</title></circle>" % (x(cert), y, level, _e(r["host"]), cert, _e(r.get("certificate_not_after")))
            )
        key = r.get("key_days")
        if key is not None:
            level = _level(key, t["key_warn_days"])
            out.append(
                '<rect x="%.1f" y="%.1f" width="10" height="10" fill="var(--%s)" opacity="0.85">'
                "<title>%s latest dynamic key: %.1f days (%s)</title></rect>"
                % (x(key) - 5, y - 5, level, _e(r["host"]), key, _e(r.get("key_valid_until")))
            )
    out.append("</svg>")
    return "".join(out)


def _td(text, cls=None, raw=False):
    body = text if raw else _e(text)
    return "<td%s>%s</td>" % (' class="s-%s"' % cls if cls else "", body)


def render_html(report):
    """One self-contained HTML5 page: no scripts, no external assets (inline CSS and SVG only)."""
    t = report["thresholds"]
    tot = report["totals"]
    h = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>PointPerfect fleet status %s</title>" % _e(report["generated_at"]),
        "<style>%s</style>" % CSS,
        "</head>",
        "<body>",
        "<h1>PointPerfect fleet status</h1>",
        '<p class="meta">Generated %s &middot; thresholds: renew_before_days %g, max_data_age %g s, '
        "key_warn_days %g, max_restarts %g</p>"
        % (
            _e(report["generated_at"]),
            t["renew_before_days"],
            t["max_data_age"],
            t["key_warn_days"],
            t["max_restarts"],
        ),
    ]
    cards = (
        ("Gateways", tot["gateways"], None),
        ("OK", tot["ok"], "ok"),
        ("Warning", tot["warning"], "warning"),
        ("Critical", tot["critical"], "critical"),
        ("Unreachable", tot["unknown"], "unknown"),
        ("Unsupported", tot.get("unsupported", 0), "unsupported"),
        ("Forwarders active", tot["forwarders_active"], None),
        ("Inputs connected", tot["inputs_connected"], None),
        ("Fleet B/s", "%.0f" % tot["bytes_per_second"], None),
    )
    h.append('<section class="cards" id="totals" aria-label="fleet totals">')
    for label, value, cls in cards:
        h.append(
            '<div class="card"%s>%s<b>%s</b></div>'
            % (' style="border-color:var(--%s)"' % cls if cls and value else "", _e(label), _e(value))
        )
    h.append("</section>")

    h.append("<h2>Failing thresholds</h2>")
    if report["problems"]:
        h.append('<ol class="problems" id="problems">')
        for p in report["problems"]:
            h.append(
                '<li><span class="badge b-%s">%s</span> <strong>%s</strong>: %s<br>'
                '<span class="remedy">Remedy: %s</span></li>'
                % (p["severity"], _e(p["severity"]), _e(p["host"]), _e(p["message"]), _e(p["remedy"]))
            )
        h.append("</ol>")
    else:
        h.append('<p id="problems">None: every gateway is within its thresholds.</p>')

    h.append("<h2>Gateways</h2>")
    h.append('<div class="scroll"><table id="gateways"><thead><tr>')
    for col in (
        "Host",
        "Health",
        "Plan",
        "Service",
        "Region",
        "Credentials",
        "Cert days",
        "Key days",
        "Forwarder",
        "Restarts",
        "Status file",
        "Input",
        "Last data",
        "B/s",
        "Bytes/s history",
        "Dropped",
        "Receiver",
        "Last error",
    ):
        h.append('<th scope="col">%s</th>' % col)
    h.append("</tr></thead><tbody>")
    for r in report["gateways"]:
        h.append('<tr class="h-%s" data-host="%s" data-health="%s">' % (r["health"], _e(r["host"]), r["health"]))
        h.append('<th scope="row">%s</th>' % _e(r["host"]))
        h.append(_td('<span class="badge b-%s">%s</span>' % (r["health"], _e(r["health"])), raw=True))
        if not r.get("reachable") or r.get("error"):
            h.append('<td colspan="16" class="s-critical">%s</td></tr>' % _e(r.get("error")))
            continue
        if r.get("unsupported"):
            h.append('<td colspan="16" class="err">unsupported: %s</td></tr>' % _e(". ".join(r["unsupported"])))
            continue
        age = r.get("last_data_age")
        age_cls = None if age is None else ("critical" if age > t["max_data_age"] else "ok")
        restarts = r.get("restarts")
        h.extend(
            [
                _td(r.get("plan")),
                _td(service_text(r)),  # what the forwarder runs, else what ZTP offered
                _td(region_text(r), "warning" if r.get("region_pending") else None),
                _td(r.get("credentials_state"), _state_class(r, "credentials_state")),
                _td(
                    _fmt(r.get("certificate_days"), "%.1f"),
                    _level(r.get("certificate_days"), t["renew_before_days"])
                    if r.get("certificate_days") is not None
                    else None,
                ),
                _td(
                    _fmt(r.get("key_days"), "%.1f"),
                    _level(r.get("key_days"), t["key_warn_days"]) if r.get("key_days") is not None else None,
                ),
                _td(r.get("forwarder_state"), _state_class(r, "forwarder_state")),
                _td(
                    _fmt(restarts, "%d"),
                    None if restarts is None else ("warning" if restarts > t["max_restarts"] else "ok"),
                ),
                _td(
                    "%s (%ss)" % (r.get("status_state"), _fmt(r.get("status_age"), "%.0f")),
                    _state_class(r, "status_state"),
                ),
                _td(r.get("input_state"), _state_class(r, "input_state") if r.get("status_state") == "ok" else None),
                _td(_fmt(age, "%.0f s"), age_cls),
                _td(_fmt(r.get("bytes_per_second"), "%.0f")),
                _td(sparkline_svg(r.get("history") or []), raw=True),
                _td(_fmt(r.get("frames_dropped"), "%d"), "warning" if r.get("frames_dropped") else None),
                _td(
                    r.get("receiver_config_state"),
                    _state_class(r, "receiver_config_state") if r.get("receiver_config_state") else None,
                ),
                '<td class="err">%s</td>' % _e(r.get("last_error")),
            ]
        )
        h.append("</tr>")
    h.append("</tbody></table></div>")

    h.append("<h2>Expiry timeline</h2>")
    h.append(
        '<p class="meta">Circle: certificate. Square: latest dynamic key. Colour: green ok, amber within '
        "threshold, red expired.</p>"
    )
    h.append('<div id="timeline">%s</div>' % timeline_svg(report))
    h.append("</body>")
    h.append("</html>")
    return "\n".join(h) + "\n"


def render_json(report):
    """The report as stable JSON text (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(report, indent=2, sort_keys=True) + "\n"
