"""Device-profile definitions for the ZTP simulator: defaults, validation, file loading and the demo profile set.

A profile (keyed by its token, a lowercase 36-char UUID) says what the simulated Thingstream answers for that token:

    {
      "plan": "ip",                # ip | lband | ip+lband | ntrip
      "region": null,              # null = every region of the plan, as the service lists them ("the correction
                                   #   topics for all available regional areas", RTK-E HTTP_Client.ino); or one
                                   #   code or a list: ip: eu us kr au jp; ip+lband: eu us au jp; lband: eu us
                                   #   (its L-band beams, used only for frequencies; no correction topic); ntrip: -
      "return_existing": true,     # false: a repeat call for a known hardwareId gets 403 "Device already registered"
      "not_activated_calls": 1,    # a new device's first N calls: 200 without certificate/privateKey/
                                   #   rtcmCredentials ("not activated yet", the usual answer to a device's first
                                   #   call: sparkfun/SparkFun_RTK_Everywhere_Firmware HTTP_Client.ino); 0 = never
      "error": null,               # null | already_registered | no_plan | not_whitelisted | bad_token | rate_limit
                                   #      | server_error | malformed | timeout
      "error_calls": null,         # null: the error is permanent; N: only the first N calls per device fail
      "error_status": 500,         # status for server_error: 500 | 502 | 503 | 504
      "error_format": "text",      # text: plain-text error body (as RTK-E logs it); json: {"message": "..."}
      "retry_after": 1,            # Retry-After seconds on 429 (and 503)
      "delay": 0,                  # seconds to wait before answering any call
      "timeout_seconds": 120,      # how long a `timeout` error holds the request before dropping the connection
      "broker_host": "127.0.0.1",  # brokerHost in MQTT answers
      "ntrip": {"host": "127.0.0.1", "port": 2101, "mountpoint": "NEAR-SPARTN", "shared_credentials": null},
                                   # shared_credentials: {"user": "u", "password": "p"} = every device gets these
      "cert_days": 365,            # lifetime of newly issued client certificates
      "live_both": false,          # MQTT plan whose answer also carries rtcmCredentials
      "note": ""                   # free text, ignored
    }

Error counting (`error_calls`, `not_activated_calls`) is per device ("token/hardwareId") and restarts when the profile
is replaced (`PUT /_sim/profiles/<token>`) or the simulator is reset. A device that was activated once is never
"not activated" again (until a reset forgets it).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

TOKEN_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

PLANS = ("ip", "lband", "ip+lband", "ntrip")
# Regions per plan: u-blox/XPLR-HPG-software XPLR-HPG-SW/bin/emuZtpResponse.json (ip+lband: EU, US, AU, Japan),
# sparkfun/SparkFun_RTK_Everywhere_Firmware Firmware/RTK_Everywhere/settings.h Regional_Information_Table (US, EU, AU,
# KR, Japan; L-band frequencies only for US and EU).
IP_REGIONS = ("eu", "us", "kr", "au", "jp")
IP_LBAND_REGIONS = ("eu", "us", "au", "jp")
LBAND_REGIONS = ("eu", "us")
PLAN_REGIONS = {"ip": IP_REGIONS, "ip+lband": IP_LBAND_REGIONS, "lband": LBAND_REGIONS, "ntrip": IP_REGIONS}
ERRORS = (
    "already_registered",
    "no_plan",
    "not_whitelisted",
    "bad_token",
    "rate_limit",
    "server_error",
    "malformed",
    "timeout",
)

DEFAULT_NTRIP = {"host": "127.0.0.1", "port": 2101, "mountpoint": "NEAR-SPARTN", "shared_credentials": None}

DEFAULT_PROFILE = {
    "plan": "ip",
    "region": None,
    "return_existing": True,
    "not_activated_calls": 1,
    "error": None,
    "error_calls": None,
    "error_status": 500,
    "error_format": "text",
    "retry_after": 1,
    "delay": 0,
    "timeout_seconds": 120,
    "broker_host": "127.0.0.1",
    "ntrip": DEFAULT_NTRIP,
    "cert_days": 365,
    "live_both": False,
    "note": "",
}

# The demo/default world: a few tokens a user can paste into an inventory (`make demo` uses them).
# Every demo device is "not activated" on its first call, as a real new device is (the default).
DEMO_IP_EU = "8f6b2f0c-1c1e-4d0a-9a51-000000000001"  # IP plan, all five regions (the name predates region auto)
DEMO_NTRIP = "8f6b2f0c-1c1e-4d0a-9a51-000000000002"  # Flex NTRIP, shared caster credentials demo/demo
DEMO_IP_LBAND_US = "8f6b2f0c-1c1e-4d0a-9a51-000000000003"  # IP + L-band, all its regions (eu us au jp)
DEMO_LBAND_EU = "8f6b2f0c-1c1e-4d0a-9a51-000000000004"  # L-band only (keys + frequencies, no correction topic)
DEMO_LIVE_BOTH = "8f6b2f0c-1c1e-4d0a-9a51-000000000005"  # IP MQTT answer that also carries rtcmCredentials
DEMO_NOT_WHITELISTED = "8f6b2f0c-1c1e-4d0a-9a51-000000000006"  # always 403 not whitelisted
DEMO_FLAKY = "8f6b2f0c-1c1e-4d0a-9a51-000000000007"  # first 2 calls per device 429, then IP
DEMO_PENDING = "8f6b2f0c-1c1e-4d0a-9a51-000000000008"  # first 3 calls per device: not activated yet

DEMO_PROFILES = {
    DEMO_IP_EU: {"plan": "ip", "note": "IP plan, corrections over MQTT for eu us kr au jp"},
    DEMO_NTRIP: {
        "plan": "ntrip",
        "ntrip": {"shared_credentials": {"user": "demo", "password": "demo"}},
        "note": "Flex NTRIP; one shared user so a single str2str caster accepts every device",
    },
    DEMO_IP_LBAND_US: {"plan": "ip+lband", "note": "IP + L-band plan (eu us au jp)"},
    DEMO_LBAND_EU: {"plan": "lband", "note": "L-band only plan: keys and frequencies over MQTT"},
    DEMO_LIVE_BOTH: {"plan": "ip", "live_both": True, "note": "MQTT plan plus rtcmCredentials"},
    DEMO_NOT_WHITELISTED: {"error": "not_whitelisted", "note": "403 Device hardware code not whitelisted"},
    DEMO_FLAKY: {"error": "rate_limit", "error_calls": 2, "retry_after": 1, "note": "two 429s, then success"},
    DEMO_PENDING: {"not_activated_calls": 3, "note": "first three calls: device not activated yet"},
}


class ProfileError(ValueError):
    """A profile that does not follow the format above."""


def _int(name: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProfileError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(name: str, value, minimum: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ProfileError(f"{name} must be a number >= {minimum}, got {value!r}")
    return value


def _bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ProfileError(f"{name} must be true or false, got {value!r}")
    return value


def _ntrip(value) -> dict:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ProfileError("ntrip must be an object")
    unknown = set(value) - set(DEFAULT_NTRIP)
    if unknown:
        raise ProfileError(f"unknown ntrip keys: {sorted(unknown)}")
    out = {**DEFAULT_NTRIP, **value}
    if not isinstance(out["host"], str) or not out["host"]:
        raise ProfileError("ntrip.host must be a non-empty string")
    out["port"] = _int("ntrip.port", out["port"], 1)
    if not isinstance(out["mountpoint"], str) or not out["mountpoint"]:
        raise ProfileError("ntrip.mountpoint must be a non-empty string")
    shared = out["shared_credentials"]
    if shared is not None:
        if not (
            isinstance(shared, dict)
            and set(shared) == {"user", "password"}
            and all(isinstance(v, str) and v for v in shared.values())
        ):
            raise ProfileError('ntrip.shared_credentials must be null or {"user": str, "password": str}')
        out["shared_credentials"] = dict(shared)
    return out


def normalize(profile: dict) -> dict:
    """Fill defaults and validate; returns a new dict or raises ProfileError."""
    if not isinstance(profile, dict):
        raise ProfileError("a profile must be a JSON object")
    unknown = set(profile) - set(DEFAULT_PROFILE)
    if unknown:
        raise ProfileError(f"unknown profile keys: {sorted(unknown)}")
    p = copy.deepcopy(DEFAULT_PROFILE)
    p.update(copy.deepcopy(profile))
    if p["plan"] not in PLANS:
        raise ProfileError(f"plan must be one of {PLANS}, got {p['plan']!r}")
    allowed = PLAN_REGIONS[p["plan"]]
    if p["region"] is None:
        p["region"] = list(allowed)
    regions = p["region"] if isinstance(p["region"], list) else [p["region"]]
    if not regions or any(r not in allowed for r in regions):
        raise ProfileError(f"region must be one or a list of {allowed} for plan {p['plan']}, got {p['region']!r}")
    _bool("return_existing", p["return_existing"])
    _bool("live_both", p["live_both"])
    _int("not_activated_calls", p["not_activated_calls"])
    if p["error"] is not None and p["error"] not in ERRORS:
        raise ProfileError(f"error must be null or one of {ERRORS}, got {p['error']!r}")
    if p["error_calls"] is not None:
        _int("error_calls", p["error_calls"])
    if p["error_status"] not in (500, 502, 503, 504):
        raise ProfileError(f"error_status must be 500, 502, 503 or 504, got {p['error_status']!r}")
    if p["error_format"] not in ("text", "json"):
        raise ProfileError(f"error_format must be text or json, got {p['error_format']!r}")
    _int("retry_after", p["retry_after"])
    _number("delay", p["delay"])
    _number("timeout_seconds", p["timeout_seconds"])
    if not isinstance(p["broker_host"], str) or not p["broker_host"]:
        raise ProfileError("broker_host must be a non-empty string")
    p["ntrip"] = _ntrip(profile.get("ntrip"))
    _number("cert_days", p["cert_days"], 0.0001)
    if not isinstance(p["note"], str):
        raise ProfileError("note must be a string")
    return p


def normalize_all(profiles: dict) -> dict:
    """Validate a token → profile mapping (tokens must be lowercase UUIDs)."""
    if not isinstance(profiles, dict):
        raise ProfileError("profiles must be a JSON object mapping token to profile")
    out = {}
    for token, profile in profiles.items():
        if not TOKEN_RE.match(token):
            raise ProfileError(f"token {token!r} is not a lowercase 36-character UUID")
        try:
            out[token] = normalize(profile)
        except ProfileError as exc:
            raise ProfileError(f"{token}: {exc}") from None
    return out


def load(path) -> dict:
    """Read a profiles file: a JSON object `{token: profile}` (a `{"profiles": {...}}` wrapper is accepted too)."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict) and set(data) == {"profiles"}:
        data = data["profiles"]
    return normalize_all(data)


def demo() -> dict:
    """The demo profile set, normalized."""
    return normalize_all(DEMO_PROFILES)
