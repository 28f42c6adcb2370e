# -*- coding: utf-8 -*-
# The options of gnss.pointperfect.ztp, shared by its action plugin (controller) and module part (target), so both
# validate the same task arguments. Standard library and ansible.module_utils only: it runs on gateways too.

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import env_fallback

DEFAULT_URL = "https://api.thingstream.io/ztp/pointperfect/credentials"


def ztp_argument_spec():
    """The public options, as DOCUMENTATION lists them (a unit test keeps the two in sync)."""
    return dict(
        token=dict(type="str", no_log=True, fallback=(env_fallback, ["POINTPERFECT_ZTP_TOKEN"])),
        hardware_id=dict(type="str", required=True),
        given_name=dict(type="str"),
        tags=dict(type="list", elements="str", default=[]),
        api_url=dict(type="str", default=DEFAULT_URL),
        dest=dict(type="path", default="/etc/pointperfect"),
        renew_before_days=dict(type="int", default=30),
        refresh_after_days=dict(type="int", default=7),
        force=dict(type="bool", default=False),
        region=dict(type="str", default="auto"),
        activation_timeout=dict(type="int", default=60),
        timeout=dict(type="int", default=30),
        retries=dict(type="int", default=3),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw", default="0600"),
    )
