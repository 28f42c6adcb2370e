# Contract 1 (the credentials directory, docs/architecture.md) in code: file names, format, the secret-free views of
# credentials.json, key and certificate times, and the value rules shared by the ztp action plugin and the forwarder.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

# Standard library only, Python 3.8+: it runs on gateways in the modules, and the forwarder imports this very file
# as pointperfect_forwarder._credentials (a symlink), so a value is judged by one set of rules on both sides.


import datetime
import ipaddress
import json
import re
import unicodedata

CERT = "client.crt"
KEY = "client.key"
CREDS = "credentials.json"
FILES = (CERT, KEY, CREDS)  # the write order: credentials.json, renamed last, is the commit record
CERT_MODE = 0o644  # client.crt; client.key and credentials.json take the module's mode option
FORMAT = 1
MQTT_PORT = 8883  # the API has no port field
PLANS = ("ip", "lband", "ip+lband", "ntrip")
DAY = 86400
# The top-level fields of credentials.json that hold no secret (gateway_info copies them as they are)
SUMMARY_FIELDS = (
    "format",
    "hardware_id",
    "given_name",
    "plan",
    "service",
    "client_id",
    "certificate_not_after",
    "regions",
)

# --- value rules ---------------------------------------------------------------------------------------------------
# Charsets and caps of every value that reaches a connection (host names, the NTRIP request line and its Basic auth,
# MQTT client id and topics). The service documents none of them: they follow the values it returns (u-blox host
# names, UUID client ids, NEAR-SPARTN style mountpoints, /pp/... topics) with length margins well above anything
# seen. None allows whitespace or control characters (CR/LF, NUL, ANSI escapes). A rule with `api=True` is the
# stricter form the controller applies to a ZTP response; the plain form is what a credentials.json may hold (the
# forwarder's documented limits, for files written by hand too).
HOST_MAX = 253
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
MOUNTPOINT_MAX = 100
_MOUNTPOINT = re.compile(r"[A-Za-z0-9._-]{1,100}")
USERNAME_MAX = 256
_USERNAME = re.compile(r"[\x21-\x39\x3b-\x7e]{1,256}")  # printable ASCII without space and ':' (Basic auth)
_SHELL_QUOTING = re.compile(r"[$`\\'\"]")  # not from the API: no shell quoting or substitution
PASSWORD_MAX = 256  # a password may hold any printable character
CLIENT_ID_MAX = 256
API_CLIENT_ID_MAX = 128  # a UUID as the service sends it; ':' and '.' as margin
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]+")
TOPIC_MAX = 256
_TOPIC = re.compile(r"[A-Za-z0-9/_.-]{1,256}")  # no MQTT wildcards (+ #), no spaces
_REGION = re.compile(r"[A-Za-z0-9_-]{1,16}")  # a region code in credentials.json (the API's are 2 letters)
_PORT_TEXT = re.compile(r"[0-9]{1,5}")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
REGIONS_MAX = 64  # regions of a plan, and correction topics
# Dynamic keys: start between 2010-01-01 and 2100-01-01 (ms), duration 1 hour .. 400 days (the service uses 28/29).
# The upper start bound also keeps the GPS week of UBX-RXM-SPARTNKEY (uint16) in range.
KEY_START_MIN_MS = 1262304000000
KEY_START_MAX_MS = 4102444800000
KEY_DURATION_MIN_MS = 3600 * 1000
KEY_DURATION_MAX_MS = 400 * 86400 * 1000
# Region name as in the ZTP descriptions -> topic region: RTK-E Firmware/RTK_Everywhere/settings.h
# Regional_Information_Table (US us, EU eu, AU au, KR kr, Japan jp); the long names are our additions.
REGION_NAMES = {
    "us": "us",
    "eu": "eu",
    "au": "au",
    "kr": "kr",
    "japan": "jp",
    "jp": "jp",
    "europe": "eu",
    "usa": "us",
    "australia": "au",
    "korea": "kr",
}
_REGION_CODE = re.compile(r"[a-z]{2}")


def _integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def valid_host(value):
    """True for a host name ([A-Za-z0-9.-], labels <= 63, total <= 253), an IPv4 or a bracket-less IPv6 address."""
    if not isinstance(value, str) or not 0 < len(value) <= HOST_MAX:
        return False
    if ":" in value:
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return False
        return True
    name = value[:-1] if value.endswith(".") else value
    return bool(name) and all(_HOST_LABEL.fullmatch(label) for label in name.split("."))


def port_number(value):
    """A port 1..65535 from an integer or a string of digits (ZTP's httpPort is a string); None when it is none."""
    if isinstance(value, str) and _PORT_TEXT.fullmatch(value):
        value = int(value)
    return value if _integer(value) and 0 < value < 65536 else None


def valid_mountpoint(value):
    return isinstance(value, str) and bool(_MOUNTPOINT.fullmatch(value))


def valid_username(value, api=False):
    """Printable ASCII without space or ':'; from the API also without shell quoting characters or '../'."""
    if not isinstance(value, str) or not _USERNAME.fullmatch(value):
        return False
    return not (api and (_SHELL_QUOTING.search(value) or "../" in value))


def valid_password(value):
    """At most PASSWORD_MAX characters without control characters (Cc) or lone surrogates (Cs); may be empty."""
    return (
        isinstance(value, str)
        and len(value) <= PASSWORD_MAX
        and not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value)
    )


def valid_client_id(value, api=False):
    limit = API_CLIENT_ID_MAX if api else CLIENT_ID_MAX
    return isinstance(value, str) and len(value) <= limit and bool(_CLIENT_ID.fullmatch(value))


def valid_topic(value, api=False):
    """An MQTT topic to subscribe to: no wildcards, no '..' level; from the API no '.' level either."""
    bad = (".", "..") if api else ("..",)
    return (
        isinstance(value, str) and bool(_TOPIC.fullmatch(value)) and not any(level in bad for level in value.split("/"))
    )


def valid_region(value):
    """A region code as credentials.json may list it (region_code() maps the API's names and codes)."""
    return isinstance(value, str) and bool(_REGION.fullmatch(value))


def valid_plan(value):
    return isinstance(value, str) and value in PLANS


def valid_format(value):
    return _integer(value) and value == FORMAT


def valid_key_start(ms):
    return _integer(ms) and KEY_START_MIN_MS <= ms < KEY_START_MAX_MS


def valid_key_duration(ms):
    return _integer(ms) and KEY_DURATION_MIN_MS <= ms <= KEY_DURATION_MAX_MS


def valid_key_value(value):
    return isinstance(value, str) and bool(_HEX32.fullmatch(value))


def region_code(name):
    """A region name or code ("EU", "Japan", "jp") -> topic region ("eu", "jp"); None when it is not one."""
    if not isinstance(name, str):
        return None
    text = " ".join(name.split()).lower()
    code = REGION_NAMES.get(text, text)
    return code if _REGION_CODE.fullmatch(code) else None


# --- reading credentials.json --------------------------------------------------------------------------------------


def dumps(doc):
    """The bytes of credentials.json: keys sorted, 2-space indent, trailing newline (same input, same bytes)."""
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def corrections_map(corrections):
    """topics.corrections as region -> topic, also from the older form (a list of topics; the region is the last
    path element); {} when it is neither."""
    if isinstance(corrections, dict):
        return dict(corrections)
    out = {}
    for topic in corrections if isinstance(corrections, list) else []:
        if isinstance(topic, str) and topic.strip("/"):
            last = topic.rstrip("/").rsplit("/", 1)[-1]
            out.setdefault(region_code(last) or last, topic)
    return out


def normalize_topics(topics):
    """Contract 1 topics from a credentials.json of either form."""
    topics = topics if isinstance(topics, dict) else {}
    return {
        "keys": topics.get("keys"),
        "corrections": corrections_map(topics.get("corrections")),
        "assistnow": topics.get("assistnow"),
        "frequencies": topics.get("frequencies"),
    }


def keys_end_ms(dynamickeys):
    """End of the newest dynamic key in ms: start + duration of `next`, else `current`; None without keys."""
    if not isinstance(dynamickeys, dict):
        return None
    newest = dynamickeys.get("next") or dynamickeys.get("current")
    if not isinstance(newest, dict):
        return None
    start, duration = newest.get("start"), newest.get("duration")
    return start + duration if _integer(start) and _integer(duration) else None


def _pick(section, names):
    return None if not isinstance(section, dict) else {name: section.get(name) for name in names}


def public_summary(doc):
    """The secret-free part of a credentials.json document (no password, user name, key values or file paths), with
    the end of the newest key; None when it is not a document of this format."""
    if not isinstance(doc, dict) or not valid_format(doc.get("format")):
        return None
    out = {name: doc.get(name) for name in SUMMARY_FIELDS}
    out["topics"] = doc.get("topics")
    out["mqtt"] = _pick(doc.get("mqtt"), ("host", "port"))
    out["ntrip"] = _pick(doc.get("ntrip"), ("host", "port", "tls_port", "mountpoint"))
    out["keys_end_ms"] = keys_end_ms(doc.get("dynamickeys"))
    return out


def public_view(doc):
    """What the ztp module returns about a credentials document (or its public_summary); names as in its RETURN."""
    mqtt = doc.get("mqtt") if isinstance(doc.get("mqtt"), dict) else {}
    ntrip = doc.get("ntrip")
    regions = doc.get("regions")
    return {
        "client_id": doc.get("client_id"),
        "plan": doc.get("plan"),
        "service": doc.get("service"),
        "broker_host": mqtt.get("host"),
        "broker_port": mqtt.get("port"),
        "regions": list(regions) if isinstance(regions, list) else [],
        "topics": normalize_topics(doc.get("topics")),
        "ntrip": None
        if not isinstance(ntrip, dict)
        else {
            "host": ntrip.get("host"),
            "port": ntrip.get("port"),
            "mountpoint": ntrip.get("mountpoint"),
            "tls": ntrip.get("tls_port"),
        },
        "certificate_not_after": doc.get("certificate_not_after"),
    }


# --- time -----------------------------------------------------------------------------------------------------------


ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # how credentials.json and the status file write times


def parse_iso(value, strict=False):
    """ISO 8601 (Z or offset; naive means UTC) -> epoch seconds, or None when absent or unparsable. strict: only
    the form credentials.json writes (ISO_FORMAT)."""
    if not isinstance(value, str) or not value:
        return None
    if strict:
        try:
            parsed = datetime.datetime.strptime(value, ISO_FORMAT)
        except ValueError:
            return None
        return parsed.replace(tzinfo=datetime.timezone.utc).timestamp()
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def iso(ts):
    """Epoch seconds (or an aware datetime) -> ISO 8601 UTC with Z, as credentials.json writes times."""
    if isinstance(ts, datetime.datetime):
        ts = ts.timestamp()
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(ISO_FORMAT)


def days_left(until, now, digits=None):
    """Days from now until an epoch time (negative when past): whole days, or rounded to `digits`; None if unknown."""
    if until is None:
        return None
    if digits is None:
        return int((until - now) // DAY)
    return round((until - now) / DAY, digits)
