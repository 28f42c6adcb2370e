# -*- coding: utf-8 -*-
# Parse and validate a ZTP 200 body (both response shapes) into the credentials model; renders credentials.json.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# NOTE: THIS IS NOT A PUBLIC API.
# This module_utils is PRIVATE and should only be used by this collection.
# Breaking changes can occur any time, without notice.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import re

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
except ImportError:  # reported by the action plugin with a hint to install it
    x509 = None

MQTT_PORT = 8883  # the API has no port field
CREDENTIALS_FORMAT = 1

# Topic paths (XPLR bin/emuZtpResponse.json, RTK-E HTTP_Client.ino); a leading slash or not, either case of ip/Lb.
_KEYS_TOPIC = re.compile(r"^/?pp/ubx/0236/(ip|lb)$", re.IGNORECASE)
_CORRECTION_TOPIC = re.compile(r"^/?pp/(ip|lb)/([A-Za-z]{2,12})(/[A-Za-z]+)?$", re.IGNORECASE)
_ASSISTNOW_TOPIC = re.compile(r"^/?pp/ubx/mga$", re.IGNORECASE)
_FREQUENCIES_TOPIC = re.compile(r"^/?pp/frequencies/lb$", re.IGNORECASE)
_REGION_TEXT = re.compile(r"\bfor\s+(?:the\s+)?([A-Za-z][A-Za-z .-]{0,30}?)\s+region\b", re.IGNORECASE)
_SUB_STREAM_TEXT = re.compile(r"geographic|area definition|atmosphere|orbit|clock", re.IGNORECASE)
_REGION_CODE = re.compile(r"^[a-z]{2}$")
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
TLS_PORTS = {2101: 2102}  # u-blox's caster only (ARK config.toml, pygnssutils examples); no client derives it
UBLOX_CASTER_DOMAIN = ".services.u-blox.com"
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")


class ZtpError(Exception):
    """A one-line, secret-free message telling the user what to do. The only error this package raises."""


class ZtpResponseError(ZtpError):
    """The API answered 200 but the body cannot be used."""


class ZtpNotActivated(ZtpError):
    """A 200 without credentials: the device is not activated yet (RTK-E: the usual answer to a first call)."""


NOT_ACTIVATED = (
    "the device is not activated yet (ZTP returned no credentials%s); "
    "activate it in Thingstream or wait a few minutes, then run again"
)


def _bad(what):
    return ZtpResponseError(
        "ZTP API returned an unusable response (%s); retry later, and report it if it persists" % what
    )


def _field(body, name, types, required=True, where=""):
    value = body.get(name)
    if value is None:
        if required:
            raise _bad("missing field %s%s" % (where, name))
        return None
    if isinstance(value, bool) and bool not in types:
        raise _bad("field %s%s has the wrong type" % (where, name))
    if not isinstance(value, types):
        raise _bad("field %s%s has the wrong type" % (where, name))
    return value


def _text(body, name, required=True, where=""):
    value = _field(body, name, (str,), required, where)
    if value is not None and required and not value.strip():
        raise _bad("field %s%s is empty" % (where, name))
    return value


def _port(value, where):
    """httpPort arrives as an int or a digit string."""
    if isinstance(value, bool):
        raise _bad("field %s has the wrong type" % where)
    if isinstance(value, str) and re.match(r"^\s*[0-9]{1,5}\s*$", value):
        value = int(value)
    if not isinstance(value, int) or not 0 < value < 65536:
        raise _bad("field %s is not a port number" % where)
    return value


def iso_z(dt):
    """UTC datetime -> 2027-11-25T21:00:00Z."""
    return dt.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def certificate_info(pem):
    """(not_after datetime UTC, sha256 fingerprint 'AA:BB:..') of a PEM certificate; ZtpResponseError if broken."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii") if isinstance(pem, str) else pem)
    except Exception:
        raise ZtpResponseError(
            "the certificate in the ZTP response is not a valid PEM certificate; "
            "retry later, and report it if it persists"
        ) from None
    return _not_after(cert), fingerprint(cert)


def _not_after(cert):
    try:
        return cert.not_valid_after_utc
    except AttributeError:  # cryptography < 42
        return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def fingerprint(cert):
    return ":".join("%02X" % b for b in bytearray(cert.fingerprint(hashes.SHA256())))


def _check_pair(cert_pem, key_pem):
    """Parse both PEMs and check the key belongs to the certificate. Messages never include PEM text."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    except Exception:
        raise ZtpResponseError(
            "the certificate in the ZTP response is not a valid PEM certificate; "
            "retry later, and report it if it persists"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem.encode("ascii"), password=None)
    except Exception:
        raise ZtpResponseError(
            "the private key in the ZTP response is not a valid unencrypted PEM key; "
            "retry later, and report it if it persists"
        ) from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise ZtpResponseError(
            "the private key in the ZTP response does not match its certificate; "
            "run again with force=true, and report it if it persists"
        )
    return cert


def _dynamic_keys(body):
    keys = _field(body, "dynamickeys", (dict,), required=False)
    if keys is None:
        return None
    out = {}
    for name in ("current", "next"):
        entry = _field(keys, name, (dict,), required=(name == "current"), where="dynamickeys.")
        if entry is None:
            continue
        where = "dynamickeys.%s." % name
        start = _field(entry, "start", (int,), where=where)
        duration = _field(entry, "duration", (int,), where=where)
        value = _text(entry, "value", where=where)
        if not _HEX32.match(value):
            raise _bad("field %svalue is not 32 hex characters" % where)
        out[name] = {"start": start, "duration": duration, "value": value.lower()}
    return out


def keys_end_ms(dynamickeys):
    """End of the newest dynamic key in ms: start + duration of `next`, else `current`; None without keys."""
    if not dynamickeys:
        return None
    newest = dynamickeys.get("next") or dynamickeys.get("current")
    if not isinstance(newest, dict):
        return None
    start, duration = newest.get("start"), newest.get("duration")
    if isinstance(start, bool) or isinstance(duration, bool):
        return None
    if not isinstance(start, int) or not isinstance(duration, int):
        return None
    return start + duration


def region_code(name):
    """A region name or code ("EU", "Japan", "jp") -> topic region ("eu", "jp"); None when it is not one."""
    if not isinstance(name, str):
        return None
    text = " ".join(name.split()).lower()
    code = REGION_NAMES.get(text, text)
    return code if _REGION_CODE.match(code) else None


def _subscription_paths(body):
    """(description, path) for every topic; path-only entries may join several topics with ';'."""
    subs = _field(body, "subscriptions", (list,), required=False) or []
    out = []
    for i, sub in enumerate(subs):
        if not isinstance(sub, dict):
            raise _bad("subscriptions[%d] has the wrong type" % i)
        where = "subscriptions[%d]." % i
        description = _field(sub, "description", (str,), required=False, where=where) or ""
        path = _text(sub, "path", where=where)
        out.extend((description, t.strip()) for t in path.split(";") if t.strip())
    return out


def _kind(text):
    return "Lb" if text.lower() == "lb" else "ip"


def _description_kind(description):
    low = description.strip().lower()
    if low.startswith("l-band") or low.startswith("lband"):
        return "Lb"
    if low.startswith("ip"):
        return "ip"
    return None


def _topics(paths, plan):
    """Contract 1 topics and regions. Regions come from correction topic paths and from descriptions; corrections
    map each region to its top-level topic of the plan's stream kind (ip: /pp/ip/<r>, ip+lband: /pp/Lb/<r>)."""
    kind = "ip" if plan == "ip" else "Lb"
    keys_by_kind, assistnow, frequencies, described_keys = {}, None, None, None
    top = {"ip": {}, "Lb": {}}  # kind -> region -> top-level topic
    seen = {"ip": {}, "Lb": {}, None: {}}  # kind -> every region named -> a topic naming it (None: a description)
    for description, topic in paths:
        m = _KEYS_TOPIC.match(topic)
        if m:
            keys_by_kind.setdefault(_kind(m.group(1)), topic)
            continue
        if _ASSISTNOW_TOPIC.match(topic):
            assistnow = assistnow or topic
            continue
        if _FREQUENCIES_TOPIC.match(topic):
            frequencies = frequencies or topic
            continue
        named = _REGION_TEXT.search(description)
        named = region_code(named.group(1)) if named else None
        m = _CORRECTION_TOPIC.match(topic)
        if m:
            k, region = _kind(m.group(1)), region_code(m.group(2))
            if region is None:
                continue
            if m.group(3) is None:
                top[k].setdefault(region, topic)
            seen[k].setdefault(region, topic)
            if named:
                seen[k].setdefault(named, None)
            continue
        low = description.lower()
        if "key distribution topic" in low and "json" not in low and "/key/" not in topic:
            described_keys = described_keys or topic
        elif named and "/" in topic and "dict" not in topic:  # a region named only in the description
            k = _description_kind(description)
            if "correction topic for" in low and not _SUB_STREAM_TEXT.search(description):
                top[k or kind].setdefault(named, topic)
            seen[k].setdefault(named, None)
    chosen = kind if (seen[kind] or not seen[_other(kind)]) else _other(kind)
    regions = set(seen[chosen]) | set(seen[None])
    corrections = {}
    if plan != "lband":
        prefix = _prefix(list(top[chosen].values()) + [t for t in seen[chosen].values() if t])
        for region in sorted(regions):  # a region without its top-level topic gets the service's pattern for it
            corrections[region] = top[chosen].get(region) or "%spp/%s/%s" % (prefix, chosen, region)
    keys = keys_by_kind.get(kind) or next(iter(sorted(keys_by_kind.values())), None) or described_keys
    topics = {"keys": keys, "corrections": corrections, "assistnow": assistnow, "frequencies": frequencies}
    return topics, sorted(regions)


def _other(kind):
    return "ip" if kind == "Lb" else "Lb"


def _prefix(examples):
    """'/' when the service writes its topics with a leading slash (it does), '' when it does not."""
    return "" if examples and all(not t.startswith("/") for t in examples) else "/"


def normalize_topics(topics):
    """Contract 1 topics from a credentials.json of either form (old form: corrections is a list of topics)."""
    topics = topics if isinstance(topics, dict) else {}
    corrections = topics.get("corrections")
    if isinstance(corrections, list):
        old = corrections
        corrections = {}
        for topic in old:
            if isinstance(topic, str) and topic.strip("/"):
                last = topic.rstrip("/").rsplit("/", 1)[-1]  # the old form's region: the last path element
                corrections.setdefault(region_code(last) or last, topic)
    elif not isinstance(corrections, dict):
        corrections = {}
    return {
        "keys": topics.get("keys"),
        "corrections": dict(corrections),
        "assistnow": topics.get("assistnow"),
        "frequencies": topics.get("frequencies"),
    }


def tls_port(host, port):
    """2102 for u-blox's caster on 2101; None otherwise (no client derives a TLS port: the user sets it)."""
    if not isinstance(host, str) or not host.lower().rstrip(".").endswith(UBLOX_CASTER_DOMAIN):
        return None
    return TLS_PORTS.get(port)


def _plan(supports_mqtt, supports_lband, has_ntrip):
    if supports_mqtt and supports_lband:
        return "ip+lband"
    if supports_mqtt:
        return "ip"
    if supports_lband:
        return "lband"
    if has_ntrip:
        return "ntrip"
    raise _bad("no plan: supportsMqtt, supportsLband and rtcmCredentials are all absent or false")


def parse_body(raw):
    """Validate a 200 body (bytes or str) and return the credentials model (a dict). Raises only ZtpError."""
    if x509 is None:
        raise ZtpError(
            "the gnss.pointperfect.ztp module needs the Python library cryptography on the controller: "
            "pip install cryptography"
        )
    try:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        body = json.loads(raw)
    except Exception:
        raise ZtpResponseError("ZTP API returned malformed JSON; retry later, and report it if it persists") from None
    if not isinstance(body, dict):
        raise _bad("the body is not a JSON object")
    return parse_credentials(body)


def parse_credentials(body):
    """Validate a decoded 200 body (dict) and return the credentials model."""
    cert_pem = body.get("certificate") or None
    key_pem = body.get("privateKey") or None
    rtcm = body.get("rtcmCredentials") or None
    if cert_pem is None and key_pem is None and rtcm is None:
        raise ZtpNotActivated(NOT_ACTIVATED % "")
    mqtt = None
    model = {
        "client_id": None,
        "certificate_pem": None,
        "private_key_pem": None,
        "certificate_not_after": None,
        "not_after": None,
        "fingerprint": None,
        "broker_host": None,
        "broker_port": None,
    }
    if cert_pem is not None or key_pem is not None:
        cert_pem = _text(body, "certificate")
        key_pem = _text(body, "privateKey")
        model["client_id"] = _text(body, "clientId")
        model["broker_host"] = _text(body, "brokerHost")
        model["broker_port"] = MQTT_PORT
        cert = _check_pair(cert_pem, key_pem)
        model["not_after"] = _not_after(cert)
        model["certificate_not_after"] = iso_z(model["not_after"])
        model["fingerprint"] = fingerprint(cert)
        model["certificate_pem"] = cert_pem if cert_pem.endswith("\n") else cert_pem + "\n"
        model["private_key_pem"] = key_pem if key_pem.endswith("\n") else key_pem + "\n"
        mqtt = True
    elif body.get("clientId") is not None:
        model["client_id"] = _text(body, "clientId")
    supports_mqtt = _field(body, "supportsMqtt", (bool,), required=False)
    supports_lband = _field(body, "supportsLband", (bool,), required=False)
    ntrip = None
    if rtcm is not None:
        if not isinstance(rtcm, dict):
            raise _bad("field rtcmCredentials has the wrong type")
        port = _port(rtcm.get("httpPort"), "rtcmCredentials.httpPort")
        host = _text(rtcm, "endpoint", where="rtcmCredentials.")
        ntrip = {
            "host": host,
            "port": port,
            "tls_port": tls_port(host, port),
            "mountpoint": _text(rtcm, "mountPoint", where="rtcmCredentials."),
            "username": _text(rtcm, "userName", where="rtcmCredentials."),
            "password": _text(rtcm, "password", where="rtcmCredentials."),
        }
    if mqtt and supports_mqtt is None and supports_lband is None:
        supports_mqtt = True  # a certificate without plan flags can only be for the IP stream
    plan = _plan(supports_mqtt, supports_lband, ntrip is not None)
    topics, regions = _topics(_subscription_paths(body), plan)
    model.update(
        {
            "plan": plan,
            "service": "ntrip" if ntrip is not None else "mqtt",
            "ntrip": ntrip,
            "dynamickeys": _dynamic_keys(body),
            "topics": topics,
            "regions": regions,
        }
    )
    return model


def credentials_document(model, hardware_id, given_name, dest):
    """The credentials.json bytes of Contract 1: keys sorted, 2-space indent, trailing newline."""
    mqtt = None
    if model["certificate_pem"] is not None:
        mqtt = {
            "host": model["broker_host"],
            "port": model["broker_port"],
            "client_id": model["client_id"],
            "certificate": dest.rstrip("/") + "/client.crt",
            "private_key": dest.rstrip("/") + "/client.key",
        }
    doc = {
        "format": CREDENTIALS_FORMAT,
        "hardware_id": hardware_id,
        "given_name": given_name,
        "plan": model["plan"],
        "service": model["service"],
        "client_id": model["client_id"],
        "certificate_not_after": model["certificate_not_after"],
        "mqtt": mqtt,
        "regions": model["regions"],
        "topics": model["topics"],
        "ntrip": model["ntrip"],
        "dynamickeys": model["dynamickeys"],
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def public_view(model):
    """The secret-free part of the model that the module returns (names as in RETURN)."""
    ntrip = model.get("ntrip")
    return {
        "client_id": model.get("client_id"),
        "plan": model.get("plan"),
        "service": model.get("service"),
        "broker_host": model.get("broker_host"),
        "broker_port": model.get("broker_port"),
        "regions": list(model.get("regions") or []),
        "topics": normalize_topics(model.get("topics")),
        "ntrip": None
        if not ntrip
        else {
            "host": ntrip["host"],
            "port": ntrip["port"],
            "mountpoint": ntrip["mountpoint"],
            "tls": ntrip["tls_port"],
        },
        "certificate_not_after": model.get("certificate_not_after"),
    }
