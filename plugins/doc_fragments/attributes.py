# Shared `attributes:` documentation of the gnss.pointperfect modules (check mode, diff, idempotency, platform).
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


class ModuleDocFragment:
    # Attributes of an action plugin with a module part, in ansible-core's wording. A module extends this and one of
    # the fragments below, which add its own details (Ansible merges the attributes of all fragments).
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no
        change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on
      the controller.
    support: full
"""

    # Details of gnss.pointperfect.ztp (provisions credentials).
    ZTP = r"""
options: {}
attributes:
  check_mode:
    details:
      - Check mode reads the deployed state, never calls the API, and reports what would happen and why
        (RV(ignore:reason)).
  diff_mode:
    details:
      - The diff shows client id, certificate SHA-256 fingerprint, not-after, endpoint and plan, never a secret.
  idempotent:
    details:
      - A second run makes no API call and reports no change while the credentials stay valid.
  action:
    details:
      - The ZTP API is called on the controller; the target only reads and writes files.
"""

    # Details of gnss.pointperfect.gateway_files (deploys files).
    FILES = r"""
options: {}
attributes:
  check_mode:
    details:
      - Check mode compares the files and reports which would change; nothing is written and no validate command
        runs.
  diff_mode:
    details:
      - The diff shows the before and after text of each changed file, except files marked O(files[].secret).
  action:
    details:
      - Templates are rendered and C(src) files read on the controller; the target only compares and writes.
"""

    # Attributes of a module that only reads (gateway_info, gateway_probe), in ansible-core's wording.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details:
      - The module only reads, so check mode runs it unchanged.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
    details:
      - Nothing is changed, so there is nothing to diff.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no
        change.
    support: full
    details:
      - Never changes anything; C(changed) is always V(false).
  platform:
    description: Target OS/families that can be operated against.
    support: N/A
    platforms: posix
"""
