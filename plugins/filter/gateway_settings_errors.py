# The gateway_settings_errors filter: the gateway role's cross-field checks of its variables
# (plugin_utils/_gateway_settings.py), one message per failing concern, for tasks/validate.yml; and
# gateway_output_dir_ok, the output path rule those checks and the unit template's ReadWritePaths= share.

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


# The documentation is in gateway_settings_errors.yml beside this file, like the other filters.

from ansible.errors import AnsibleFilterError
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._gateway_settings import errors, output_dir_ok


def gateway_settings_errors(settings, argument_errors=None):
    """The one-line message of every failing check of the role's settings (a mapping), an empty list when all pass;
    one line naming the argument specification's failures instead, when `argument_errors` holds any."""
    if not hasattr(settings, "keys"):
        raise AnsibleFilterError("gateway_settings_errors expects a mapping of the role's settings")
    try:
        return errors(settings, argument_errors)
    except KeyError as e:
        raise AnsibleFilterError(str(e.args[0])) from None


def gateway_output_dir_ok(path, config_dir, install_dir):
    """Whether the directory of the output file `path` may become the unit's ReadWritePaths=."""
    return output_dir_ok(path, config_dir, install_dir)


class FilterModule:
    def filters(self):
        return {"gateway_settings_errors": gateway_settings_errors, "gateway_output_dir_ok": gateway_output_dir_ok}
