# Fleet status report, the writers (controller only): the report data of _fleet_health.py as a terminal table, a
# self-contained HTML page with inline SVG (sparklines, expiry timeline) and stable JSON text.

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!


import html
import json

from ansible_collections.gnss.pointperfect.plugins.plugin_utils._fleet_health import days_level

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
    rows = [TABLE_COLUMNS, *table_rows(report)]
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
            level = days_level(cert, t["renew_before_days"])
            out.append(
                '<circle cx="%.1f" cy="%.1f" r="6" fill="var(--%s)"><title>%s certificate: %.1f days (%s)'
                "</title></circle>" % (x(cert), y, level, _e(r["host"]), cert, _e(r.get("certificate_not_after")))
            )
        key = r.get("key_days")
        if key is not None:
            level = days_level(key, t["key_warn_days"])
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
                    days_level(r.get("certificate_days"), t["renew_before_days"])
                    if r.get("certificate_days") is not None
                    else None,
                ),
                _td(
                    _fmt(r.get("key_days"), "%.1f"),
                    days_level(r.get("key_days"), t["key_warn_days"]) if r.get("key_days") is not None else None,
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
