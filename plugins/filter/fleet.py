# -*- coding: utf-8 -*-
# Filters that turn gateway_status results into the fleet report: health problems, the report data, and its
# terminal, HTML and JSON renderings.

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: fleet_health
short_description: Problems of a PointPerfect fleet, worst first, each with its remedy
version_added: 0.1.0
author:
  - gnss.pointperfect maintainers
description:
  - Evaluates thresholds on M(gnss.pointperfect.gateway_status) results and returns the failing ones, critical first.
  - The same module also provides C(fleet_report) (the report data, with a bytes/s history taken from the previous
    report), C(fleet_table) (terminal text), C(fleet_html) (one self-contained HTML page) and C(fleet_json).
options:
  _input:
    description: Mapping of inventory host name to its registered gateway_status result (V(null) when unreachable).
    type: dict
    required: true
  thresholds:
    description:
      - Overrides of C(renew_before_days) (30), C(max_data_age) (60 seconds), C(key_warn_days) (7) and
        C(max_restarts) (3).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: List failing gateways
  ansible.builtin.debug:
    msg: "{{ results | gnss.pointperfect.fleet_health({'renew_before_days': 45}) }}"

- name: Build the report and write it as HTML
  vars:
    report: "{{ results | gnss.pointperfect.fleet_report({}, previous_json_text) }}"
  ansible.builtin.copy:
    content: "{{ report | gnss.pointperfect.fleet_html }}"
    dest: ./pointperfect-report/index.html
    mode: "0644"
"""

RETURN = r"""
_value:
  description: List of problems with C(host), C(severity) (critical or warning), C(check), C(message), C(remedy),
    C(value) and C(threshold).
  type: list
  elements: dict
"""

# ruff: noqa: E402 -- Ansible plugins keep DOCUMENTATION/EXAMPLES/RETURN above the imports.
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


def fleet_report(results, thresholds=None, previous=None, history_length=fr.HISTORY_LENGTH):
    return fr.fleet_report(results, thresholds, previous, history_length=history_length)


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
