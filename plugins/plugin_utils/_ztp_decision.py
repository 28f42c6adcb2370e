# Pure renewal decision for gnss.pointperfect.ztp: deployed state + options -> reason (no I/O, unit-tested).
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# NOTE: THIS IS NOT A PUBLIC API.
# This plugin_utils is PRIVATE and should only be used by this collection (controller side only).
# Breaking changes can occur any time, without notice.


from collections import namedtuple

from ansible_collections.gnss.pointperfect.plugins.module_utils._credentials import DAY, days_left

KEYS_MARGIN_DAYS = 7  # NTRIP-only: keys renew through the weekly refresh long before this

REASONS = ("missing", "hardware_id_changed", "expiring", "stale", "forced", "valid")

Decision = namedtuple("Decision", ["reason", "call_api", "detail"])


def decide(deployed, hardware_id, now, *, renew_before_days=30, refresh_after_days=7, force=False):  # noqa: PLR0911 - one return per reason, in priority order
    """Decide whether the ZTP API must be called.

    deployed (all times are epoch seconds, any key may be absent):
      credentials: bool, credentials.json exists and parses with the expected format
      hardware_id: str, the hardware id recorded in credentials.json
      mqtt: bool, credentials.json records MQTT credentials (client.crt/client.key expected)
      certificate_ok: bool, client.crt and client.key exist and the certificate parses
      certificate_not_after: float, the certificate's not-after (from the certificate itself)
      recorded_not_after: float, the not-after recorded in credentials.json (must match the certificate)
      keys_end: float, end of the newest dynamic key (start + duration of `next`, else `current`); ignored with
        MQTT credentials (keys arrive live on the key topic), NTRIP-only: within KEYS_MARGIN_DAYS -> expiring
      ntrip: bool, credentials.json records NTRIP credentials
      confirmed_at: float, mtime of credentials.json = last ZTP call that confirmed the credentials
    Precedence: missing > hardware_id_changed > expiring > stale > forced > valid (the most telling reason wins).
    """
    renew = renew_before_days * DAY
    if not deployed.get("credentials"):
        return Decision("missing", True, "no valid credentials.json in dest")
    if deployed.get("mqtt"):
        if not deployed.get("certificate_ok"):
            return Decision("missing", True, "client certificate or key is missing or unreadable")
        if deployed.get("recorded_not_after") != deployed.get("certificate_not_after"):
            return Decision("missing", True, "client certificate does not match credentials.json")
    elif not deployed.get("ntrip"):
        return Decision("missing", True, "credentials.json holds neither MQTT nor NTRIP credentials")
    if deployed.get("hardware_id") != hardware_id:
        return Decision(
            "hardware_id_changed",
            True,
            "deployed credentials belong to hardware id %r, not %r" % (deployed.get("hardware_id"), hardware_id),
        )
    not_after = deployed.get("certificate_not_after") if deployed.get("mqtt") else None
    if not_after is not None and not_after - now < renew:
        return Decision(
            "expiring",
            True,
            "certificate expires in %d days (renew_before_days=%d)" % (days_left(not_after, now), renew_before_days),
        )
    keys_end = None if deployed.get("mqtt") else deployed.get("keys_end")
    if keys_end is not None and keys_end - now < KEYS_MARGIN_DAYS * DAY:
        return Decision(
            "expiring",
            True,
            "newest dynamic key expires in %d days (less than %d)" % (days_left(keys_end, now), KEYS_MARGIN_DAYS),
        )
    confirmed_at = deployed.get("confirmed_at")
    if deployed.get("ntrip") and (confirmed_at is None or now - confirmed_at > refresh_after_days * DAY):
        age = "unknown" if confirmed_at is None else "%d days" % ((now - confirmed_at) // DAY)
        return Decision(
            "stale", True, "NTRIP credentials last confirmed %s ago (refresh_after_days=%d)" % (age, refresh_after_days)
        )
    if force:
        return Decision("forced", True, "force=true")
    return Decision("valid", False, "credentials are valid")
