# The app_specific_id filter: systemd's sd_id128_get_machine_app_specific() scheme (module_utils/_app_specific_id.py,
# which gateway_probe uses on the gateway too), so a machine id can be turned into an id that does not reveal it.

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


# The documentation is in app_specific_id.yml beside this file, like the fleet_* filters.

from ansible.errors import AnsibleFilterError
from ansible_collections.gnss.pointperfect.plugins.module_utils import _app_specific_id

APP_ID = _app_specific_id.APP_ID


def app_specific_id(machine_id, app_id=APP_ID):
    """The app-specific id of machine_id (32 lowercase hex digits); a bad id fails without showing it."""
    try:
        return _app_specific_id.app_specific_id(machine_id, app_id)
    except ValueError as e:
        raise AnsibleFilterError("app_specific_id: %s" % e) from None


class FilterModule:
    def filters(self):
        return {"app_specific_id": app_specific_id}
