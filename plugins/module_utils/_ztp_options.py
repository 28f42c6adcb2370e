# The options of gnss.pointperfect.ztp, shared by its action plugin (controller) and module part (target), so both
# validate the same task arguments. Standard library and ansible.module_utils only: it runs on gateways too.

# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!


import re

DEFAULT_URL = "https://api.thingstream.io/ztp/pointperfect/credentials"

# Local checks of the values sent to the ZTP API, made before any call. Thingstream publishes no limit for the
# hardware id: 64 characters of letters, digits and . _ : - leave margin over every id seen in practice (a MAC
# address with or without colons, a module's unique id in hex, "pp-" + a 32-character machine id, a UUID); the
# simulator refuses more than 128. The token is the device profile's token, a lowercase UUID.
HARDWARE_ID_MAX = 64
HARDWARE_ID_CHARS = "letters, digits, '.', '_', ':' and '-'"
HARDWARE_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]+$")  # also gateway_probe's check of the role's id
TOKEN_ENV = "POINTPERFECT_ZTP_TOKEN"  # noqa: S105 - the name of the token option's fallback variable
_TOKEN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def ztp_argument_spec():
    """The public options, as DOCUMENTATION lists them (a unit test keeps the two in sync)."""
    # imported here: token_error() and the other rules serve the role's checks on the controller, whose worker would
    # otherwise import ansible.module_utils.common.parameters (about 30 ms of CPU per host and task) for nothing
    from ansible.module_utils.common.parameters import env_fallback  # noqa: PLC0415

    return dict(
        token=dict(type="str", no_log=True, fallback=(env_fallback, [TOKEN_ENV])),
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


def hardware_id_error(value):
    """The one-line error for a hardware id the API cannot take, None when it is acceptable."""
    if not isinstance(value, str) or not value.strip():
        return "hardware_id is empty: set it to the device's unique id, such as hpg-a1b2c3"
    if value != value.strip():
        return "hardware_id %r has leading or trailing whitespace: remove it" % value
    if len(value) > HARDWARE_ID_MAX:
        return "hardware_id is %d characters long: use at most %d (%s)" % (
            len(value),
            HARDWARE_ID_MAX,
            HARDWARE_ID_CHARS,
        )
    if not HARDWARE_ID_PATTERN.match(value):
        bad = sorted(set(c for c in value if not re.match(r"[A-Za-z0-9._:-]", c)))
        return "hardware_id %r contains %s: use only %s" % (value, ", ".join(repr(c) for c in bad), HARDWARE_ID_CHARS)
    return None


def token_error(value):
    """The one-line error for a malformed ZTP token (never quoting it), None when it has the token's form."""
    if value is None or value == "":
        return None  # missing: reported only when the API must be called
    if not isinstance(value, str):
        return "the ZTP token is not a string: set it to the device profile's token, a lowercase UUID"
    if value != value.strip():
        return "the ZTP token has leading or trailing whitespace (a copy and paste artefact?): remove it"
    if _TOKEN.match(value.lower()) and value != value.lower():
        return "the ZTP token has upper-case letters: write it in lower case (a lowercase UUID)"
    if not _TOKEN.match(value):
        return (
            "the ZTP token is not a device-profile token (%d characters; expected a lowercase UUID of 36, such as "
            "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): copy it from the device profile in Thingstream" % len(value)
        )
    return None
