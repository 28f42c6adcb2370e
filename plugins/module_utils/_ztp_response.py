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

_KEYS_TOPIC = re.compile(r"^/?pp/ubx/0236/(ip|Lb)$")
_CORRECTION_TOPIC = re.compile(r"^/?pp/(ip|Lb)/([a-z]{2})(/[a-z]+)?$")
_ASSISTNOW_TOPIC = re.compile(r"^/?pp/ubx/mga$")
_REGION_TEXT = re.compile(r"\b([A-Za-z]{2})\s+region\b")
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")


class ZtpError(Exception):
    """A one-line, secret-free message telling the user what to do. The only error this package raises."""


class ZtpResponseError(ZtpError):
    """The API answered 200 but the body cannot be used."""


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


def _topics(paths, kind):
    """keys/corrections/assistnow topics and regions, preferring the stream kind ('ip' or 'Lb') of the plan."""
    keys_by_kind, corrections, regions, assistnow = {}, [], set(), None
    for description, topic in paths:
        m = _KEYS_TOPIC.match(topic)
        if m:
            keys_by_kind.setdefault(m.group(1), topic)
            continue
        m = _CORRECTION_TOPIC.match(topic)
        if m:
            if m.group(3) is None:
                corrections.append((m.group(1), topic))
            regions.add(m.group(2))
            d = _REGION_TEXT.search(description)
            if d:
                regions.add(d.group(1).lower())
            continue
        if _ASSISTNOW_TOPIC.match(topic):
            assistnow = assistnow or topic
    preferred = [t for k, t in corrections if k == kind] or [t for k, t in corrections]
    keys = keys_by_kind.get(kind) or next(iter(sorted(keys_by_kind.values())), None)
    return {"keys": keys, "corrections": sorted(set(preferred)), "assistnow": assistnow}, sorted(regions)


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
        raise ZtpError(
            "the device is not activated yet (ZTP returned no credentials); "
            "activate it in Thingstream or wait a few minutes, then run again"
        )
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
        ntrip = {
            "host": _text(rtcm, "endpoint", where="rtcmCredentials."),
            "port": port,
            "tls_port": port + 1,
            "mountpoint": _text(rtcm, "mountPoint", where="rtcmCredentials."),
            "username": _text(rtcm, "userName", where="rtcmCredentials."),
            "password": _text(rtcm, "password", where="rtcmCredentials."),
        }
    if mqtt and supports_mqtt is None and supports_lband is None:
        supports_mqtt = True  # a certificate without plan flags can only be for the IP stream
    plan = _plan(supports_mqtt, supports_lband, ntrip is not None)
    topics, regions = _topics(_subscription_paths(body), "ip" if supports_mqtt else "Lb")
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
        "topics": dict(model.get("topics") or {"keys": None, "corrections": [], "assistnow": None}),
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
