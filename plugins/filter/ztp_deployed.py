# The ztp_deployed filter: what gnss.pointperfect.ztp would do with the credentials gnss.pointperfect.gateway_probe
# read (plugin_utils/_ztp_deployed.py, the action's own decision and checks), and the deployed credentials' view, so
# the gateway role decides a no-op gateway in its meta task, before the ztp task's worker process and the account's.

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


# The documentation is in ztp_deployed.yml beside this file, like the other filters.

from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_deployed import deployed


def ztp_deployed(  # noqa: PLR0917 - the ztp module's options the decision reads
    probed,
    hardware_id,
    dest,
    owner,
    group,
    mode,
    renew_before_days=None,
    refresh_after_days=None,
    force=None,
    region=None,
):
    """{current, reason, detail, and the deployed credentials' view}: current when the ztp task would keep them."""
    target = {"dest": dest, "owner": owner, "group": group, "mode": mode}
    options = {
        "renew_before_days": renew_before_days,
        "refresh_after_days": refresh_after_days,
        "force": force,
        "region": region,
    }
    return deployed(probed, target, hardware_id, options)


class FilterModule:
    def filters(self):
        return {"ztp_deployed": ztp_deployed}
