# systemd's sd_id128_get_machine_app_specific() in stdlib Python: a stable id derived from a machine id that does not
# reveal it (machine-id(5)). Shared by the app_specific_id filter (controller) and gateway_probe (on the gateway).
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# NOTE: THIS IS NOT A PUBLIC API.
# This module_utils is PRIVATE and should only be used by this collection.
# Breaking changes can occur any time, without notice.


import binascii
import hashlib
import hmac
import re

# The application id of this collection: uuid.uuid5(uuid.NAMESPACE_DNS, "gnss.pointperfect"), as systemd-id128
# prints it. Never change it: every derived hardware id, and so every Thingstream device, would change with it.
APP_ID = "c9f4d130385c5b1ea446272ce2bc630f"

# gateway_probe's hardware_id option (derived on the controller by its action plugin from what the probe read)
HARDWARE_ID_OPTIONS = dict(
    value=dict(type="str", default=""),
    prefix=dict(type="str", default="pp-"),
    source=dict(type="str", default="machine_id", choices=["machine_id", "mac"]),
)

_HEX = "[0-9a-fA-F]"
_ID128 = re.compile(rf"^(?:{_HEX}{{32}}|{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}})$")


def id128(value, what):
    """The 16 bytes of a 128-bit id written as 32 hex digits or as a UUID (the two forms systemd reads), surrounding
    whitespace ignored. Raises ValueError naming `what`, never the value: a machine id stays out of messages."""
    text = value.strip() if isinstance(value, str) else None
    if text is None or not _ID128.match(text):
        raise ValueError("the %s is not 32 hexadecimal digits (or a UUID)" % what)
    raw = binascii.unhexlify(text.replace("-", ""))
    if raw == b"\0" * 16:
        raise ValueError("the %s is all zeros" % what)
    return raw


def app_specific_id(machine_id, app_id=APP_ID):
    """HMAC-SHA256 keyed with the machine id over the app id; its first 16 bytes made a UUID v4 (systemd's
    id128_make_v4_uuid: version nibble 4, variant bits 10). Returned as 32 lowercase hex digits, the form
    `systemd-id128 machine-id --app-specific=APP_ID` prints on the gateway. Raises ValueError for a bad id."""
    key = id128(machine_id, "machine id")
    digest = bytearray(hmac.new(key, id128(app_id, "app id"), hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return binascii.hexlify(bytes(digest)).decode("ascii")
