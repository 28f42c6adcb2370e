# Parse and validate a ZTP 200 body (both response shapes) into the credentials model; renders credentials.json.
# A new response field is added in one place, here: read and check it in parse_credentials (with the value rules of
# module_utils/_credentials.py when it reaches the gateway), put it in the model, and, when the gateway needs it,
# into credentials_dict (Contract 1, docs/architecture.md); the module's RETURN shows it through
# _credentials.public_view.
# Copyright (c) gnss.pointperfect maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# NOTE: THIS IS NOT A PUBLIC API.
# This plugin_utils is PRIVATE and should only be used by this collection (controller side only).
# Breaking changes can occur any time, without notice.


import datetime
import json
import re

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
except ImportError:  # reported by the action plugin with a hint to install it
    x509 = None

from ansible_collections.gnss.pointperfect.plugins.module_utils import _credentials as contract
from ansible_collections.gnss.pointperfect.plugins.module_utils._credentials import iso, region_code

# Topic paths (XPLR bin/emuZtpResponse.json, RTK-E HTTP_Client.ino); a leading slash or not, either case of ip/Lb.
_KEYS_TOPIC = re.compile(r"^/?pp/ubx/0236/(ip|lb)$", re.IGNORECASE)
_CORRECTION_TOPIC = re.compile(r"^/?pp/(ip|lb)/([A-Za-z]{2,12})(/[A-Za-z]+)?$", re.IGNORECASE)
_ASSISTNOW_TOPIC = re.compile(r"^/?pp/ubx/mga$", re.IGNORECASE)
_FREQUENCIES_TOPIC = re.compile(r"^/?pp/frequencies/lb$", re.IGNORECASE)
_REGION_TEXT = re.compile(r"\bfor\s+(?:the\s+)?([A-Za-z][A-Za-z .-]{0,30}?)\s+region\b", re.IGNORECASE)
_SUB_STREAM_TEXT = re.compile(r"geographic|area definition|atmosphere|orbit|clock", re.IGNORECASE)
TLS_PORTS = {2101: 2102}  # u-blox's caster only (ARK config.toml, pygnssutils examples); no client derives it
UBLOX_CASTER_DOMAIN = ".services.u-blox.com"
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


# How the messages name the rules of _credentials
HOST_TEXT = "a host name or IP address"
CLIENT_ID_TEXT = "a client id ([A-Za-z0-9._:-], at most %d)" % contract.API_CLIENT_ID_MAX
MOUNTPOINT_TEXT = "a mountpoint ([A-Za-z0-9._-], at most %d)" % contract.MOUNTPOINT_MAX
USERNAME_TEXT = "a user name (printable ASCII without space or ':', at most %d)" % contract.USERNAME_MAX


def _api(rule):
    """The stricter form of a _credentials rule that a value from the API must pass."""
    return lambda value: rule(value, api=True)


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


def _checked(body, name, valid, what, where=""):
    """A required text field that passes valid (a rule of _credentials); the message names the field, never the
    value."""
    value = _text(body, name, where=where)
    if not valid(value):
        raise _bad("field %s%s is not %s" % (where, name, what))
    return value


def _password(body, name, where=""):
    value = _text(body, name, where=where)
    if not contract.valid_password(value):
        raise _bad(
            "field %s%s has control characters or more than %d characters" % (where, name, contract.PASSWORD_MAX)
        )
    return value


def _port(value, where):
    """httpPort arrives as an int or a digit string (surrounding spaces allowed)."""
    if isinstance(value, bool):
        raise _bad("field %s has the wrong type" % where)
    port = contract.port_number(value.strip(" ") if isinstance(value, str) else value)
    if port is None:
        raise _bad("field %s is not a port number" % where)
    return port


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
            % iso(_not_after(cert))
        )
    if _not_before(cert) > now + CLOCK_SKEW:
        raise ZtpResponseError(
            "the certificate in the ZTP response is not valid before %s; check the controller's clock, and report "
            "it if it persists" % iso(_not_before(cert))
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
        if not contract.valid_key_start(start):
            raise _bad("field %sstart is not a time between 2010 and 2100 in ms" % where)
        if not contract.valid_key_duration(duration):
            raise _bad("field %sduration is not between 1 hour and 400 days in ms" % where)
        if not contract.valid_key_value(value):
            raise _bad("field %svalue is not 32 hex characters" % where)
        out[name] = {"start": start, "duration": duration, "value": value.lower()}
    return out


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
            if not contract.valid_topic(topic, api=True):
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
    corrections = {} if plan == "lband" else _corrections(regions, chosen, top[chosen], seen[chosen])
    keys = keys_by_kind.get(kind) or next(iter(sorted(keys_by_kind.values())), None) or described_keys
    topics = {"keys": keys, "corrections": corrections, "assistnow": assistnow, "frequencies": frequencies}
    return topics, sorted(regions)


def _corrections(regions, kind, top, seen):
    """Region -> correction topic of one stream kind: the region's top-level topic, or the service's pattern for it
    when the answer lists none."""
    prefix = _prefix(list(top.values()) + [t for t in seen.values() if t])
    return {region: top.get(region) or "%spp/%s/%s" % (prefix, kind, region) for region in sorted(regions)}


def _other(kind):
    return "ip" if kind == "Lb" else "Lb"


def _prefix(examples):
    """'/' when the service writes its topics with a leading slash (it does), '' when it does not."""
    return "" if examples and all(not t.startswith("/") for t in examples) else "/"


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
        model["client_id"] = _checked(body, "clientId", _api(contract.valid_client_id), CLIENT_ID_TEXT)
        model["broker_host"] = _checked(body, "brokerHost", contract.valid_host, HOST_TEXT)
        model["broker_port"] = contract.MQTT_PORT
        mqtt = True  # the certificate and key are checked last (the costliest check)
    elif body.get("clientId") is not None:
        model["client_id"] = _checked(body, "clientId", _api(contract.valid_client_id), CLIENT_ID_TEXT)
    supports_mqtt = _field(body, "supportsMqtt", (bool,), required=False)
    supports_lband = _field(body, "supportsLband", (bool,), required=False)
    ntrip = None
    if rtcm is not None:
        if not isinstance(rtcm, dict):
            raise _bad("field rtcmCredentials has the wrong type")
        w = "rtcmCredentials."
        port = _port(rtcm.get("httpPort"), w + "httpPort")
        host = _checked(rtcm, "endpoint", contract.valid_host, HOST_TEXT, w)
        derived = tls_port(host, port)
        if derived is not None and contract.port_number(derived) is None:
            raise _bad("field %shttpPort gives no valid TLS port" % w)
        ntrip = {
            "host": host,
            "port": port,
            "tls_port": derived,
            "mountpoint": _checked(rtcm, "mountPoint", contract.valid_mountpoint, MOUNTPOINT_TEXT, w),
            "username": _checked(rtcm, "userName", _api(contract.valid_username), USERNAME_TEXT, w),
            "password": _password(rtcm, "password", where=w),
        }
    if mqtt and supports_mqtt is None and supports_lband is None:
        supports_mqtt = True  # a certificate without plan flags can only be for the IP stream
    plan = _plan(supports_mqtt, supports_lband, ntrip is not None)
    topics, regions = _topics(_subscription_paths(body), plan)
    if len(regions) > contract.REGIONS_MAX:  # the forwarder would refuse the file
        raise _bad("subscriptions name more than %d regions" % contract.REGIONS_MAX)
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
        model["certificate_not_after"] = iso(model["not_after"])
        model["fingerprint"] = fingerprint(cert)
        model["certificate_pem"] = cert_out  # re-serialized: nothing but the one certificate reaches client.crt
        model["private_key_pem"] = key_out
    return model


def credentials_dict(model, hardware_id, given_name, dest):
    """The credentials.json document of Contract 1 for a model."""
    mqtt = None
    if model["certificate_pem"] is not None:
        mqtt = {
            "host": model["broker_host"],
            "port": model["broker_port"],
            "client_id": model["client_id"],
            "certificate": dest.rstrip("/") + "/" + contract.CERT,
            "private_key": dest.rstrip("/") + "/" + contract.KEY,
        }
    return {
        "format": contract.FORMAT,
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


def credentials_document(model, hardware_id, given_name, dest):
    """The credentials.json bytes of Contract 1."""
    return contract.dumps(credentials_dict(model, hardware_id, given_name, dest))
