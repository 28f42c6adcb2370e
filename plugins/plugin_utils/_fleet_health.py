# Fleet status report, the data (controller only): gateway_info results -> rows, the health checks with their remedies,
# and the report (rows worst first, totals, bytes/s history). The writers are in _fleet_render.py.
#
# A new fleet-report check is one function `(row, thresholds) -> Finding or None` plus one entry in CHECKS (and its
# bad row in BAD_ROWS of tests/unit/plugins/plugin_utils/test_fleet_health.py).

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!


import json
import time
from collections import namedtuple

from ansible_collections.gnss.pointperfect.plugins.module_utils._credentials import days_left, iso, parse_iso

REPORT_FORMAT = 1
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


def days_level(days, warn_days):
    """Days left -> "critical" (none left), "warning" (fewer than warn_days), "ok"; "unknown" when not known."""
    if days is None:
        return "unknown"
    if days <= 0:
        return "critical"
    return "warning" if days < warn_days else "ok"


# ---------------------------------------------------------------- rows


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
    return iso(until), days_left(until, now, digits=2)


def _preflight_problems(gateway):
    return [
        p.get("message")
        for p in _dict(gateway.get("preflight")).get("problems") or []
        if isinstance(p, dict) and p.get("message")
    ]


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
    preflight = _preflight_problems(gateway)
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


# ---------------------------------------------------------------- checks

# What a check found: the problem's text and remedy; value and threshold when a threshold was crossed.
Finding = namedtuple("Finding", "message remedy value threshold", defaults=(None, None))
# One row of the check tables: the problem's `check` name, its severity and the test (row, thresholds) -> Finding.
Check = namedtuple("Check", "name severity test")

PROVISION = "gnss.pointperfect.provision"


def _unit(row):
    return row.get("forwarder_unit")


def _status_ok(row):
    """The forwarder's status file was read and is fresh: its input, output and state can be judged."""
    return row.get("status_state") == "ok"


def _unreachable(row, t):
    if not row.get("reachable", True):
        return Finding(
            "host unreachable: %s" % row.get("error"), "check the network path and SSH access to the gateway"
        )
    return None


def _not_collected(row, t):
    if row.get("error") and row.get("reachable", True):
        return Finding(
            "status could not be collected: %s" % row["error"],
            "check Python 3 on the gateway and privileges (become) for the status playbook",
        )
    return None


def _unsupported(row, t):
    if row.get("unsupported"):
        return Finding(
            "unsupported: %s" % ". ".join(row["unsupported"]),
            "fix the cause named (most often: upgrade the gateway to a release with Python 3.10+), then run "
            + PROVISION,
        )
    return None


def _not_provisioned(row, t):
    if row.get("credentials_state") == "missing":
        return Finding("not provisioned (no credentials.json)", "run the %s playbook for this gateway" % PROVISION)
    return None


def _file_unusable(what, field, remedy):
    """A check on a file gateway_info read (row[field + "_state"]): it fires when the file is corrupt or unreadable."""

    def test(row, t):
        state = row.get(field + "_state")
        if state not in ("corrupt", "unreadable"):
            return None
        return Finding("%s %s: %s" % (what, state, row.get(field + "_error")), remedy)

    return test


_credentials_broken = _file_unusable(
    "credentials.json",
    "credentials",
    "run %s (with become for unreadable files) to rewrite the credentials" % PROVISION,
)


def _days_left(field, threshold, level, message, remedy):
    """A check on the days left in row[field]: it fires when days_level() against thresholds[threshold] is `level`.
    The message is formatted with days, ago (days since the end) and threshold."""

    def test(row, t):
        days = row.get(field)
        if days_level(days, t[threshold]) != level:
            return None
        return Finding(message.format(days=days, ago=-days, threshold=t[threshold]), remedy, days, t[threshold])

    return test


_certificate_expired = _days_left(
    "certificate_days",
    "renew_before_days",
    "critical",
    "certificate expired {ago:.1f} days ago",
    "run %s to renew the certificate" % PROVISION,
)
_certificate_expiring = _days_left(
    "certificate_days",
    "renew_before_days",
    "warning",
    "certificate expires in {days:.1f} days (< {threshold:g})",
    "run %s; it renews credentials within renew_before_days" % PROVISION,
)
_keys_expired = _days_left(
    "key_days",
    "key_warn_days",
    "critical",
    "all dynamic keys expired",
    "run %s to fetch fresh dynamic keys (and check the MQTT key topic)" % PROVISION,
)
_keys_expiring = _days_left(
    "key_days",
    "key_warn_days",
    "warning",
    "latest dynamic key expires in {days:.1f} days (< {threshold:g})",
    "run %s to refresh the dynamic keys" % PROVISION,
)


def _forwarder_not_installed(row, t):
    # not provisioned at all is the credentials problem alone
    if row.get("forwarder_state") == "absent" and row.get("credentials_state") != "missing":
        return Finding(
            "forwarder unit %s not installed" % _unit(row),
            "run %s (gateway role) to install the forwarder" % PROVISION,
        )
    return None


def _forwarder_stopped(row, t):
    state = row.get("forwarder_state")
    if state in ("inactive", "failed", "deactivating"):
        return Finding(
            "forwarder %s (%s)" % (state, row.get("forwarder_sub_state")),
            "journalctl -u %s; then systemctl restart %s" % (_unit(row), _unit(row)),
        )
    return None


def _restart_loop(row, t):
    restarts = row.get("restarts")
    if restarts is not None and restarts > t["max_restarts"]:
        return Finding(
            "forwarder restarted %d times (> %g)" % (restarts, t["max_restarts"]),
            "restart loop: read journalctl -u %s for the cause" % _unit(row),
            restarts,
            t["max_restarts"],
        )
    return None


def _status_file_missing(row, t):
    # a gateway without credentials has no forwarder yet: its missing status file is no news
    if row.get("status_state") == "missing" and row.get("credentials_state") == "ok":
        return Finding(
            "forwarder status file missing",
            "start the forwarder (systemctl start %s) and check its health.status_file" % _unit(row),
        )
    return None


def _status_stale(row, t):
    if row.get("status_state") == "stale":
        return Finding(
            "forwarder status not updated for %ds" % (row.get("status_age") or 0),
            "forwarder hung or stopped: journalctl -u %s; systemctl restart %s" % (_unit(row), _unit(row)),
        )
    return None


_status_unreadable = _file_unusable(
    "status file", "status", "check the forwarder version and the status file permissions"
)


NO_FIX = "the receiver has no fix: check the antenna and its view of the sky, or set "


def _waiting_for_position(row, t):
    if _status_ok(row) and row.get("input_state") == "waiting_for_position":
        return Finding(
            "waiting for a position fix: the NTRIP caster sends nothing before a GGA",
            NO_FIX + "pointperfect_fixed_position (lat, lon, alt) for this gateway",
        )
    return None


def _credentials_rejected(row, t):
    if _status_ok(row) and row.get("input_state") == "auth_failed":
        return Finding(
            "credentials rejected by %s" % row.get("endpoint"),
            "re-run %s (credentials were rotated or revoked)" % PROVISION,
        )
    return None


def _no_data_yet(row, t):
    state = row.get("input_state")
    if (
        _status_ok(row)
        and row.get("last_data_age") is None
        and state not in ("connected", "waiting_for_position", "auth_failed")
    ):
        return Finding(
            "no correction data received (input %s)" % state,
            "check network access to %s and the forwarder log" % row.get("endpoint"),
        )
    return None


def _data_too_old(row, t):
    age = row.get("last_data_age")
    if _status_ok(row) and age is not None and age > t["max_data_age"]:
        return Finding(
            "last data %ds ago (> %g s)" % (age, t["max_data_age"]),
            "check the input (%s, %s) and network access to %s"
            % (row.get("input_type"), row.get("input_state"), row.get("endpoint")),
            age,
            t["max_data_age"],
        )
    return None


def _output_down(row, t):
    if _status_ok(row) and row.get("output_state") not in (None, "open", "connected"):
        return Finding(
            "output %s is %s" % (row.get("output_type"), row.get("output_state")),
            "check the receiver link (device path, cable, permissions)",
        )
    return None


def _region_pending(row, t):
    if _status_ok(row) and row.get("input_state") == "connected" and row.get("region_pending"):
        return Finding(
            "no correction region chosen yet (plan regions: %s): only the key topic is subscribed"
            % (", ".join(row.get("regions") or []) or "-"),
            NO_FIX + "pointperfect_fixed_position or pointperfect_region for this gateway",
        )
    return None


def _d9s_failed(row, t):
    if _status_ok(row) and row.get("lband_d9s_state") == "failed":
        return Finding(
            "NEO-D9S configuration failed",
            "check pointperfect_lband_device, pointperfect_lband_baudrate and pointperfect_lband_port "
            "(the D9S port the gateway is wired to)",
        )
    return None


def _receiver_config_failed(row, t):
    if _status_ok(row) and row.get("receiver_config_state") == "failed":
        return Finding(
            "receiver configuration failed",
            "check receiver.port/baudrate in forwarder.json and the receiver model",
        )
    return None


def _reported_unhealthy(row, t):
    if _status_ok(row) and row.get("healthy") is False:
        return Finding(
            "forwarder reports unhealthy: %s" % row.get("last_error"),
            "journalctl -u %s" % _unit(row),
        )
    return None


# Checked first, in this order: the first that fires is the row's only problem (nothing else can be judged).
GATES = (
    Check("reachable", "critical", _unreachable),
    Check("collect", "critical", _not_collected),
    Check("unsupported", "critical", _unsupported),
)

# Every check of a gateway that was read. Within a severity, problems keep this order.
CHECKS = (
    Check("credentials", "critical", _not_provisioned),
    Check("credentials", "critical", _credentials_broken),
    Check("certificate", "critical", _certificate_expired),
    Check("certificate", "warning", _certificate_expiring),
    Check("keys", "critical", _keys_expired),
    Check("keys", "warning", _keys_expiring),
    Check("service", "critical", _forwarder_not_installed),
    Check("service", "critical", _forwarder_stopped),
    Check("restarts", "warning", _restart_loop),
    Check("status", "critical", _status_file_missing),
    Check("status", "critical", _status_stale),
    Check("status", "warning", _status_unreadable),
    Check("position", "warning", _waiting_for_position),
    Check("input", "critical", _credentials_rejected),
    Check("data", "critical", _no_data_yet),
    Check("data", "critical", _data_too_old),
    Check("output", "warning", _output_down),
    Check("region", "warning", _region_pending),
    Check("lband", "warning", _d9s_failed),
    Check("receiver", "warning", _receiver_config_failed),
)

# Only when no check above fired: the forwarder's own verdict, for a fault none of them names.
FALLBACKS = (Check("healthy", "warning", _reported_unhealthy),)


def _run(checks, row, thresholds):
    found = []
    for check in checks:
        finding = check.test(row, thresholds)
        if finding is not None:
            found.append(
                {
                    "host": row["host"],
                    "severity": check.severity,
                    "check": check.name,
                    "message": finding.message,
                    "remedy": finding.remedy,
                    "value": finding.value,
                    "threshold": finding.threshold,
                }
            )
    return found


def row_problems(row, thresholds=None):
    """Threshold and state checks for one row -> problems (each with its remedy), worst first."""
    t = thresholds_with_defaults(thresholds)
    for gate in GATES:
        found = _run((gate,), row, t)
        if found:
            return found
    found = _run(CHECKS, row, t) or _run(FALLBACKS, row, t)
    return sorted(found, key=lambda p: SEVERITY_RANK[p["severity"]])


# ---------------------------------------------------------------- report


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


def sort_rows(rows):
    """Worst health first, then more problems first, then by host."""
    return sorted(rows, key=lambda r: (HEALTH_RANK[r["health"]], -len(r["problems"]), r["host"]))


def fleet_health(results, thresholds=None, now=None):
    """{host: registered gateway_info result or None} -> all problems, worst first, each with its remedy."""
    problems = []
    for host in sorted(_dict(results)):
        problems.extend(row_problems(gateway_row(host, results[host], now), thresholds))
    return sort_problems(problems)


def _previous_rows(previous):
    """The gateway rows (dicts) of an earlier JSON report, its text or data; [] for anything else."""
    if isinstance(previous, str):
        try:
            previous = json.loads(previous) if previous.strip() else {}
        except ValueError:
            return []
    rows = _dict(previous).get("gateways")
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def previous_history(previous):
    """{host: [[iso, bytes_per_second], ...]} from an earlier JSON report (text or dict); tolerant of junk."""
    history = {}
    for gw in _previous_rows(previous):
        if not isinstance(gw.get("host"), str):
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
    rows = sort_rows(rows)
    return {
        "format": REPORT_FORMAT,
        "generated_at": iso(now),
        "thresholds": t,
        "totals": totals(rows, problems),
        "problems": sort_problems(problems),
        "gateways": rows,
    }


def _carried_problems(row):
    return [
        p
        for p in row.get("problems") or []
        if isinstance(p, dict)
        and p.get("severity") in SEVERITY_RANK
        and isinstance(p.get("host"), str)
        and isinstance(p.get("check"), str)
    ]


def carry_over(report, previous, keep_hosts):
    """Add the previous report's rows of keep_hosts that this run did not read (a --limit run), as they were."""
    keep = set(h for h in keep_hosts or [] if isinstance(h, str))
    old_rows = _previous_rows(previous) if keep else []
    if not old_rows:
        return report
    rows = list(report["gateways"])
    problems = list(report["problems"])
    present = set(row["host"] for row in rows)
    for row in old_rows:
        if row.get("host") not in keep or row["host"] in present or row.get("health") not in HEALTH_RANK:
            continue
        row_probs = _carried_problems(row)
        rows.append(dict(row, problems=row_probs, carried_over=True))
        problems.extend(row_probs)
        present.add(row["host"])
    rows = sort_rows(rows)
    problems = sort_problems(problems)
    return dict(report, gateways=rows, problems=problems, totals=totals(rows, problems))


def _soonest(rows, field):
    best = None
    for row in rows:
        if row.get(field) is not None and (best is None or row[field] < best[1]):
            best = (row["host"], row[field])
    return {"host": best[0], "days": best[1]} if best else None


def totals(rows, problems):
    """The report's fleet totals: gateways per health, active forwarders, fleet bytes/s, the soonest expiries."""
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
