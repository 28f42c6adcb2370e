# The ztp_token_error filter: the ztp module's own token rule (module_utils/_ztp_options.token_error), so the gateway
# role checks a token before any change on the gateway with the same rule and the same message as the module.

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


# The documentation is in ztp_token_error.yml beside this file, like the other filters.

from ansible_collections.gnss.pointperfect.plugins.module_utils._ztp_options import token_error


def ztp_token_error(token):
    """The one-line problem with a ZTP token (never quoting it), None when it has the token's form or is unset."""
    return token_error(token)


class FilterModule:
    def filters(self):
        return {"ztp_token_error": ztp_token_error}
