# The deployed credentials as gnss.pointperfect.ztp decides on them: the probe's read standing for the module part's,
# the renewal decision's input, the module's RETURN view of them, the region option and its check; and `deployed`,
# what the ztp task would do with that state, for the gateway role's no-op decision (the ztp_deployed filter).
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# NOTE: THIS IS NOT A PUBLIC API.
# This plugin_utils is PRIVATE and should only be used by this collection (controller side only).
# Breaking changes can occur any time, without notice.


import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.gnss.pointperfect.plugins.module_utils._atomic import AtomicWriteError, parse_mode
from ansible_collections.gnss.pointperfect.plugins.module_utils._credentials import (
    CREDS,
    FILES,
    KEY,
    days_left,
    iso,
    parse_iso,
    public_view,
    region_code,
)
from ansible_collections.gnss.pointperfect.plugins.module_utils._ztp_options import ztp_argument_spec
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_decision import decide
from ansible_collections.gnss.pointperfect.plugins.plugin_utils._ztp_response import ZtpError, certificate_info

# The ztp module's options the decision reads: typed and defaulted by the module's own argument spec.
DECISION_OPTIONS = ("renew_before_days", "refresh_after_days", "force", "region")


def decision_options(options):
    """`options` (an unset one, None, takes the module's default) as the ztp module's argument spec types them;
    ZtpError naming a bad one."""
    spec = ztp_argument_spec()
    given = {k: v for k, v in (options or {}).items() if k in DECISION_OPTIONS and v is not None}
    checked = ArgumentSpecValidator({name: spec[name] for name in DECISION_OPTIONS}).validate(given)
    if checked.error_messages:
        raise ZtpError("; ".join(checked.error_messages))
    return checked.validated_parameters


def region_option(value):
    """The region option as 'auto' or a region code ('EU' and 'Japan' are accepted as eu and jp)."""
    text = (value or "auto").strip()
    if text.lower() == "auto":
        return "auto"
    code = region_code(text)
    if code is None:
        raise ZtpError("region %r is not a region code: set region to auto or a code such as eu, us, kr, au, jp" % text)
    return code


def region_error(region, regions):
    """The one-line error when an explicit region is not in the plan; None when it is (or nothing to check)."""
    regions = [r for r in regions or [] if isinstance(r, str)]
    if region == "auto" or not regions or region in regions:
        return None  # NTRIP and L-band-only plans list no correction regions: nothing to check against
    return "region %r is not in this plan (%s): set region to one of them or auto" % (region, ", ".join(regions))


def probed_state(probed, target):
    """The probe's credentials state when it can stand for the module part's read of target (the same dest, owner,
    group and mode, every key the decision uses, and owner and group existing or no credential file deployed: a fresh
    gateway is missing them whatever the ids); None otherwise (read again)."""
    if not isinstance(probed, dict):
        return None
    try:
        wanted = {
            "dest": target["dest"],
            "owner": target["owner"],
            "group": target["group"],
            "mode": "%04o" % parse_mode(target["mode"]),
        }
    except AtomicWriteError:
        return None
    if probed.get("read_for") != wanted or probed.get("dest") != target["dest"]:
        return None
    files = probed.get("files")
    complete = (
        isinstance(files, dict)
        and all(isinstance(files.get(n), dict) for n in FILES)
        and all(k in probed for k in ("dest_exists", "credentials", "certificate_pem", "now"))
    )
    if not complete:
        return None
    fresh = all(files[n].get("exists") is False for n in FILES)
    return probed if probed.get("ids_known") is True or fresh else None


def deployed_from_state(state):
    """Turn the module part's read result into the decision input (and the deployed certificate facts)."""
    creds = state.get("credentials") or None
    files = state.get("files") or {}
    deployed = {"credentials": creds is not None, "fingerprint": None}
    if creds is None:
        return deployed
    deployed["hardware_id"] = creds.get("hardware_id")
    deployed["mqtt"] = creds.get("mqtt") is not None
    deployed["ntrip"] = creds.get("ntrip") is not None
    deployed["confirmed_at"] = (files.get(CREDS) or {}).get("mtime")
    keys_end = creds.get("keys_end_ms")
    deployed["keys_end"] = keys_end / 1000.0 if isinstance(keys_end, (int, float)) else None
    deployed["recorded_not_after"] = parse_iso(creds.get("certificate_not_after"), strict=True)
    pem = state.get("certificate_pem")
    if pem and (files.get(KEY) or {}).get("regular"):
        try:
            not_after, fp = certificate_info(pem)
        except ZtpError:
            pass
        else:
            deployed["certificate_ok"] = True
            deployed["certificate_not_after"] = not_after.timestamp()
            deployed["fingerprint"] = fp
    return deployed


def deployed_view(state, deployed):
    """RETURN values describing what is deployed (no API call made): the certificate's own not-after counts."""
    not_after = deployed.get("certificate_not_after") if deployed.get("mqtt") else None
    view = public_view(state.get("credentials") or {})
    view["certificate_not_after"] = None if not_after is None else iso(not_after)
    view["days_remaining"] = days_left(not_after, state.get("now") or time.time())
    return view


def misattributed(state):
    """The deployed credential files whose mode or owner differs (regular files only: a symlink, fifo or directory is
    never changed through)."""
    return sorted(
        n for n, f in state["files"].items() if f.get("exists") and f.get("regular") and not f.get("attributes_ok")
    )


def assess(state, hardware_id, options):
    """(facts, decision, now): the renewal decision on a read state (the module part's, or the probe's standing for
    it), with the options renew_before_days, refresh_after_days and force."""
    facts = deployed_from_state(state)
    now = state.get("now") or time.time()
    decision = decide(
        facts,
        hardware_id,
        now,
        renew_before_days=options["renew_before_days"],
        refresh_after_days=options["refresh_after_days"],
        force=options["force"],
    )
    return facts, decision, now


def deployed(probed, target, hardware_id, options):
    """What the ztp task would do with the probe's credentials state, decided as its action decides (no I/O):
    `current` is true when it would call no API, change nothing and not fail; with the deployed credentials' view
    (plan, service, regions, ...: what the role's templates read) whenever the state can be used. `target` holds
    dest, owner, group and mode; `options` the decision's options (an unset one takes the module's default)."""
    result = {"current": False, "reason": None, "detail": "the probe's read cannot stand for the module's"}
    state = probed_state(probed, target)
    if state is None or not isinstance(hardware_id, str) or not hardware_id:
        return result
    try:
        typed = decision_options(options)
        region = region_option(typed["region"])
    except ZtpError as e:  # the ztp task names the bad option
        return dict(result, detail=str(e))
    facts, decision, _now = assess(state, hardware_id, typed)
    result.update(reason=decision.reason, detail=decision.detail)
    if facts.get("credentials"):
        result.update(deployed_view(state, facts))
    result["current"] = bool(
        not decision.call_api and not region_error(region, result.get("regions")) and not misattributed(state)
    )
    return result
