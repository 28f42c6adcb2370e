# -*- coding: utf-8 -*-
# Filters that turn gateway_info results into the fleet report: health problems, the report data, and its
# terminal, HTML and JSON renderings.

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The documentation of each filter is in its own file beside this one (fleet_health.yml, fleet_report.yml,
# fleet_table.yml, fleet_html.yml, fleet_json.yml): a DOCUMENTATION here would be shown for all five.

import json

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.gnss.pointperfect.plugins.module_utils import _fleet_report as fr


def _wrap(func):
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (TypeError, ValueError, KeyError) as exc:
            raise AnsibleFilterError("%s: %s" % (func.__name__, to_native(exc))) from exc

    run.__name__ = func.__name__
    return run


def fleet_health(results, thresholds=None):
    return fr.fleet_health(results, thresholds)


def fleet_report(results, thresholds=None, previous=None, history_length=fr.HISTORY_LENGTH, keep_hosts=None):
    report = fr.fleet_report(results, thresholds, previous, history_length=history_length)
    return _carry_over(report, previous, keep_hosts)


def _carry_over(report, previous, keep_hosts):
    """Add the previous report's rows of keep_hosts that this run did not read (a --limit run), as they were."""
    keep = set(h for h in keep_hosts or [] if isinstance(h, str))
    if isinstance(previous, str):
        try:
            previous = json.loads(previous) if previous.strip() else {}
        except ValueError:
            previous = {}
    old_rows = previous.get("gateways") if isinstance(previous, dict) else None
    if not keep or not isinstance(old_rows, list):
        return report
    rows = list(report["gateways"])
    problems = list(report["problems"])
    present = set(row["host"] for row in rows)
    for row in old_rows:
        if not isinstance(row, dict) or row.get("host") not in keep or row["host"] in present:
            continue
        if row.get("health") not in fr.HEALTH_RANK:
            continue
        row_problems = [
            p
            for p in row.get("problems") or []
            if isinstance(p, dict)
            and p.get("severity") in fr.SEVERITY_RANK
            and isinstance(p.get("host"), str)
            and isinstance(p.get("check"), str)
        ]
        rows.append(dict(row, problems=row_problems, carried_over=True))
        problems.extend(row_problems)
        present.add(row["host"])
    rows.sort(key=lambda r: (fr.HEALTH_RANK[r["health"]], -len(r["problems"]), r["host"]))
    problems = fr.sort_problems(problems)
    return dict(report, gateways=rows, problems=problems, totals=fr._totals(rows, problems))


def fleet_table(report):
    return fr.render_table(report)


def fleet_html(report):
    return fr.render_html(report)


def fleet_json(report):
    return fr.render_json(report)


class FilterModule(object):
    def filters(self):
        return {
            "fleet_health": _wrap(fleet_health),
            "fleet_report": _wrap(fleet_report),
            "fleet_table": _wrap(fleet_table),
            "fleet_html": _wrap(fleet_html),
            "fleet_json": _wrap(fleet_json),
        }
