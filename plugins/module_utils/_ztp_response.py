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
import ipaddress
import json
import re

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
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

# Bounds for every value of a 200 body that reaches the gateway. The service documents none of them: they are the
# charsets the values are seen with (u-blox host names, UUID client ids, NEAR-SPARTN style mountpoints, pp/...
# topics), with length margins well above anything seen. A value outside them is refused before anything is written;
# none of them allows whitespace, control characters (CR/LF, NUL, ANSI escapes), "$(" or a "../" path.
_HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MOUNTPOINT = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
# printable ASCII without space, ':' (Basic auth) and shell quoting/substitution characters ($ ` \ ' ")
_USERNAME = re.compile(r"^[\x21\x23\x25\x26\x28-\x39\x3b-\x5b\x5d-\x5f\x61-\x7e]{1,256}$")
_PASSWORD_BAD = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # a password may hold any printable character
PASSWORD_MAX = 256
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a UUID as the service sends it; ':' and '.' as margin
_TOPIC = re.compile(r"^[A-Za-z0-9/_.-]{1,256}$")  # no MQTT wildcards (+ #), no spaces
# Dynamic keys: start between 2010-01-01 and 2100-01-01 (ms), duration 1 hour .. 400 days (the service uses 28/29).
KEY_START_MIN_MS = 1262304000000
KEY_START_MAX_MS = 4102444800000
KEY_DURATION_MIN_MS = 3600 * 1000
KEY_DURATION_MAX_MS = 400 * 86400 * 1000
PEM_MAX = 16 * 1024  # one certificate or key (an RSA-4096 key PEM is about 3.3 KiB)
CLOCK_SKEW = datetime.timedelta(minutes=5)  # a certificate valid from up to 5 minutes in the future is accepted
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----")


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


def _checked(body, name, pattern, what, where=""):
    """A required text field matching pattern; the message names the field, never the value."""
    value = _text(body, name, where=where)
    if not pattern.fullmatch(value) or value != value.strip() or "../" in value:
        raise _bad("field %s%s is not %s" % (where, name, what))
    return value


def valid_host(value):
    """True for a host name ([A-Za-z0-9.-], labels <= 63, total <= 253), an IPv4 or a bracket-less IPv6 address."""
    if not isinstance(value, str) or not 0 < len(value) <= 253:
        return False
    if ":" in value:
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return False
        return True
    name = value[:-1] if value.endswith(".") else value
    return bool(name) and all(_HOST_LABEL.fullmatch(label) for label in name.split("."))


def _host(body, name, where=""):
    value = _text(body, name, where=where)
    if not valid_host(value):
        raise _bad("field %s%s is not a host name or IP address" % (where, name))
    return value


def _password(body, name, where=""):
    value = _text(body, name, where=where)
    if len(value) > PASSWORD_MAX or _PASSWORD_BAD.search(value):
        raise _bad("field %s%s has control characters or more than %d characters" % (where, name, PASSWORD_MAX))
    return value


def valid_port(value):
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _port(value, where):
    """httpPort arrives as an int or a digit string."""
    if isinstance(value, bool):
        raise _bad("field %s has the wrong type" % where)
    if isinstance(value, str) and re.fullmatch(r" *[0-9]{1,5} *", value):
        value = int(value)
    if not valid_port(value):
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


def _utc(cert, bound):
    """The certificate's not_valid_before or not_valid_after (bound) as an aware UTC datetime."""
    try:
        return getattr(cert, bound + "_utc")
    except AttributeError:  # cryptography < 42
        return getattr(cert, bound).replace(tzinfo=datetime.timezone.utc)


def _not_after(cert):
    return _utc(cert, "not_valid_after")


def fingerprint(cert):
    return ":".join("%02X" % b for b in bytearray(cert.fingerprint(hashes.SHA256())))


def _single_pem(text, kinds, what):
    """The one PEM block of text (of a type in kinds) when the field holds exactly that and whitespace; the
    certificate field holding a key, a second block or anything else (junk) is refused."""
    if len(text) > PEM_MAX:
        raise ZtpResponseError(
            "the %s in the ZTP response is larger than %d KiB; retry later, and report it if it persists"
            % (what, PEM_MAX // 1024)
        )
    blocks = list(_PEM_BLOCK.finditer(text))
    if not blocks:
        raise ZtpResponseError(
            "the %s in the ZTP response is not a valid %s; retry later, and report it if it persists"
            % (what, "PEM certificate" if "CERTIFICATE" in kinds else "unencrypted PEM key")
        )
    rest = _PEM_BLOCK.sub("", text)
    if len(blocks) != 1 or blocks[0].group(1) not in kinds or rest.strip():
        raise ZtpResponseError(
            "the %s in the ZTP response is not exactly one PEM block (extra text or blocks); retry later, and report "
            "it if it persists" % what
        )
    return blocks[0].group(0), blocks[0].group(1)


def _not_before(cert):
    return _utc(cert, "not_valid_before")


def _key_strength_error(key):
    """None for RSA >= 2048 bits or EC on a curve of >= 256 bits (the service: RSA 2048, AWS IoT)."""
    if isinstance(key, rsa.RSAPublicKey):
        return None if key.key_size >= 2048 else "an RSA key of %d bits (at least 2048 needed)" % key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return None if key.curve.key_size >= 256 else "an EC key of %d bits (P-256 or more needed)" % key.curve.key_size
    return "an unsupported key type (RSA 2048+ or EC P-256+ needed)"


def _check_pair(cert_pem, key_pem, now=None):
    """Parse both PEMs, check the certificate (validity, strength) and that the key belongs to it; return
    (certificate, certificate PEM, key PEM) re-serialized from the parsed objects, never the raw fields.
    Messages never include PEM text."""
    cert_block = _single_pem(cert_pem, ("CERTIFICATE",), "certificate")[0]
    try:
        cert = x509.load_pem_x509_certificate(cert_block.encode("ascii"))
    except Exception:
        raise ZtpResponseError(
            "the certificate in the ZTP response is not a valid PEM certificate; "
            "retry later, and report it if it persists"
        ) from None
    key_block, key_kind = _single_pem(key_pem, ("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"), "private key")
    try:
        key = serialization.load_pem_private_key(key_block.encode("ascii"), password=None)
    except Exception:
        raise ZtpResponseError(
            "the private key in the ZTP response is not a valid unencrypted PEM key; "
            "retry later, and report it if it persists"
        ) from None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if _not_after(cert) <= now:
        raise ZtpResponseError(
            "the certificate in the ZTP response expired on %s; run again later, and report it if it persists"
            % iso_z(_not_after(cert))
        )
    if _not_before(cert) > now + CLOCK_SKEW:
        raise ZtpResponseError(
            "the certificate in the ZTP response is not valid before %s; check the controller's clock, and report "
            "it if it persists" % iso_z(_not_before(cert))
        )
    try:
        public = cert.public_key()
    except Exception:
        public = None
    weak = _key_strength_error(public)
    if weak:
        raise ZtpResponseError("the certificate in the ZTP response has %s; report it" % weak)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if public.public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise ZtpResponseError(
            "the private key in the ZTP response does not match its certificate; "
            "run again with force=true, and report it if it persists"
        )
    fmt = (
        serialization.PrivateFormat.PKCS8
        if key_kind == "PRIVATE KEY"
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    key_out = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode("ascii")
    cert_out = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return cert, cert_out, key_out


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
        if not KEY_START_MIN_MS <= start < KEY_START_MAX_MS:
            raise _bad("field %sstart is not a time between 2010 and 2100 in ms" % where)
        if not KEY_DURATION_MIN_MS <= duration <= KEY_DURATION_MAX_MS:
            raise _bad("field %sduration is not between 1 hour and 400 days in ms" % where)
        if not _HEX32.fullmatch(value):
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
        description = _field(sub, "description", (str,), required=False, where=where) or ""  # parsed, never stored
        path = _text(sub, "path", where=where)
        for part in path.split(";"):
            topic = part.strip(" ")
            if not topic:
                continue
            if not _TOPIC.fullmatch(topic) or any(part in (".", "..") for part in topic.split("/")):
                raise _bad("field %spath is not a list of MQTT topics ([A-Za-z0-9/_.-], at most 256)" % where)
            out.append((description, topic))
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


def parse_body(raw, now=None):
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
    except Exception:  # also RecursionError on deeply nested JSON
        raise ZtpResponseError("ZTP API returned malformed JSON; retry later, and report it if it persists") from None
    if not isinstance(body, dict):
        raise _bad("the body is not a JSON object")
    return parse_credentials(body, now)


def parse_credentials(body, now=None):
    """Validate a decoded 200 body (dict) and return the credentials model (now: aware UTC datetime, for tests)."""
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
        model["client_id"] = _checked(body, "clientId", _CLIENT_ID, "a client id ([A-Za-z0-9._:-], at most 128)")
        model["broker_host"] = _host(body, "brokerHost")
        model["broker_port"] = MQTT_PORT
        mqtt = True  # the certificate and key are checked last (the costliest check)
    elif body.get("clientId") is not None:
        model["client_id"] = _checked(body, "clientId", _CLIENT_ID, "a client id ([A-Za-z0-9._:-], at most 128)")
    supports_mqtt = _field(body, "supportsMqtt", (bool,), required=False)
    supports_lband = _field(body, "supportsLband", (bool,), required=False)
    ntrip = None
    if rtcm is not None:
        if not isinstance(rtcm, dict):
            raise _bad("field rtcmCredentials has the wrong type")
        w = "rtcmCredentials."
        port = _port(rtcm.get("httpPort"), w + "httpPort")
        host = _host(rtcm, "endpoint", where=w)
        derived = tls_port(host, port)
        if derived is not None and not valid_port(derived):
            raise _bad("field %shttpPort gives no valid TLS port" % w)
        ntrip = {
            "host": host,
            "port": port,
            "tls_port": derived,
            "mountpoint": _checked(rtcm, "mountPoint", _MOUNTPOINT, "a mountpoint ([A-Za-z0-9._-], at most 100)", w),
            "username": _checked(
                rtcm, "userName", _USERNAME, "a user name (printable ASCII without space or ':', at most 256)", w
            ),
            "password": _password(rtcm, "password", where=w),
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
    if mqtt:
        cert, cert_out, key_out = _check_pair(cert_pem, key_pem, now)
        model["not_after"] = _not_after(cert)
        model["certificate_not_after"] = iso_z(model["not_after"])
        model["fingerprint"] = fingerprint(cert)
        model["certificate_pem"] = cert_out  # re-serialized: nothing but the one certificate reaches client.crt
        model["private_key_pem"] = key_out
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
