# Filters that turn gateway_info results into the fleet report: health problems, the report data, and its
# terminal, HTML and JSON renderings. The data and its checks are in plugin_utils/_fleet_health.py, the writers in
# plugin_utils/_fleet_render.py.

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


# The documentation of each filter is in its own file beside this one (fleet_health.yml, fleet_report.yml,
# fleet_table.yml, fleet_html.yml, fleet_json.yml): a DOCUMENTATION here would be shown for all five.

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _fleet_health as health
from ansible_collections.gnss.pointperfect.plugins.plugin_utils import _fleet_render as render


def _wrap(func):
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (TypeError, ValueError, KeyError) as exc:
            raise AnsibleFilterError("%s: %s" % (func.__name__, to_native(exc))) from exc

    run.__name__ = func.__name__
    return run


def fleet_health(results, thresholds=None):
    return health.fleet_health(results, thresholds)


def fleet_report(results, thresholds=None, previous=None, history_length=health.HISTORY_LENGTH, keep_hosts=None):
    report = health.fleet_report(results, thresholds, previous, history_length=history_length)
    return health.carry_over(report, previous, keep_hosts)


def fleet_table(report):
    return render.render_table(report)


def fleet_html(report):
    return render.render_html(report)


def fleet_json(report):
    return render.render_json(report)


class FilterModule:
    def filters(self):
        return {
            "fleet_health": _wrap(fleet_health),
            "fleet_report": _wrap(fleet_report),
            "fleet_table": _wrap(fleet_table),
            "fleet_html": _wrap(fleet_html),
            "fleet_json": _wrap(fleet_json),
        }
