"""Sample ZTP answers and certificates shared by the unit tests."""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pointperfect_sim.pki import key_to_pem, self_signed

KEY_A = "0123456789abcdef0123456789abcdef"
KEY_B = "fedcba9876543210fedcba9876543210"

# Dynamic keys as the service hands them out (u-blox/XPLR-HPG-software XPLR-HPG-SW/bin/emuZtpResponse.json):
# a 28-day grid, `next` starting one period after `current` and lasting a little longer.
KEY_ANCHOR_MS = 1668815982000  # XPLR's dynamickeys.current.start
KEY_PERIOD_MS = 2419200000
KEY_CURRENT_MS = 2419199999
KEY_NEXT_MS = 2505599999


def key_grid(now_ms, values=(KEY_A, KEY_B)):
    """`dynamickeys` as the service returns them at now_ms (current = the period containing now)."""
    start = KEY_ANCHOR_MS + ((now_ms - KEY_ANCHOR_MS) // KEY_PERIOD_MS) * KEY_PERIOD_MS
    return {
        "current": {"start": start, "duration": KEY_CURRENT_MS, "value": values[0]},
        "next": {"start": start + KEY_PERIOD_MS, "duration": KEY_NEXT_MS, "value": values[1]},
    }


def _streams(prefix, kind, region, name):
    """One region's correction topic, its four sub-streams and the path-only entry joining them (XPLR's shape)."""
    topic = f"/pp/{kind}/{region}"
    return [
        {"description": f"{prefix} correction topic for {name} region", "path": topic},
        {"description": f"{prefix} geographic area definition topic for {name} region", "path": topic + "/gad"},
        {
            "description": f"{prefix} high-precision atmosphere correction topic for {name} region",
            "path": topic + "/hpac",
        },
        {"description": f"{prefix} GNSS orbit, clocks and bias topic for {name} region", "path": topic + "/ocb"},
        {"description": f"{prefix} GNSS clock topic for {name} region", "path": topic + "/clk"},
        {"path": ";".join(topic + s for s in ("/gad", "/hpac", "/ocb", "/clk"))},
    ]


def xplr_body(pki):
    """The structure of XPLR-HPG-SW/bin/emuZtpResponse.json (IP + L-band, EU US AU Japan) with usable values:
    AU has only its correction topic, the frequencies topic rides on the US path-only entry."""
    subs = [
        {"description": "L-band + IP key distribution topic", "path": "/pp/ubx/0236/Lb"},
        {"description": "L-band + IP AssistNow topic", "path": "/pp/ubx/mga"},
    ]
    subs += _streams("L-band + IP", "Lb", "eu", "EU")
    us = _streams("L-band + IP", "Lb", "us", "US")
    subs += us[:-1]
    subs.append({"description": "L-band + IP frequencies topic", "path": "/pp/frequencies/Lb"})
    subs.append({"path": us[-1]["path"] + ";/pp/frequencies/Lb"})
    subs.append({"description": "L-band + IP correction topic for AU region", "path": "/pp/Lb/au"})
    subs += _streams("L-band + IP", "Lb", "jp", "Japan")
    return {
        "certificate": pki["cert"],
        "clientId": "3b7c1f0e-52a4-4d8e-9c61-7f2a90d4b8e1",
        "privateKey": pki["key"],
        "subscriptionsTitle": "Topics",
        "brokerHost": "pp.services.u-blox.com",
        "supportsLband": True,
        "subscriptions": subs,
        "supportsMqtt": True,
        "rotatingKeyTitle": "L-band + IP Dynamic Keys",
        "dynamickeys": {
            "next": {"duration": KEY_NEXT_MS, "start": 1671235182000, "value": KEY_B},
            "current": {"duration": KEY_CURRENT_MS, "start": 1668815982000, "value": KEY_A},
        },
    }


def rtke_ip_body(pki):
    """An IP plan answer covering the five regions of RTK-E's Regional_Information_Table (sparkfun/
    SparkFun_RTK_Everywhere_Firmware Firmware/RTK_Everywhere/settings.h: US, EU, AU, KR, Japan), XPLR's layout."""
    subs = [
        {"description": "IP key distribution topic", "path": "/pp/ubx/0236/ip"},
        {"description": "IP AssistNow topic", "path": "/pp/ubx/mga"},
    ]
    for region, name in (("eu", "EU"), ("us", "US"), ("kr", "KR"), ("au", "AU"), ("jp", "Japan")):
        subs += _streams("IP", "ip", region, name)
    return mqtt_body(pki, subscriptions=subs, subscriptionsTitle="Topics", rotatingKeyTitle="IP Dynamic Keys")


def mqtt_body(pki, **over):
    body = {
        "clientId": "9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f",
        "certificate": pki["cert"],
        "privateKey": pki["key"],
        "brokerHost": "pp.services.u-blox.com",
        "supportsLband": False,
        "supportsMqtt": True,
        "dynamickeys": {
            "current": {"start": 1661558382000, "duration": 2419199999, "value": KEY_A},
            "next": {"start": 1663977582000, "duration": 2419199999, "value": KEY_B},
        },
        "subscriptions": [
            {"description": "Current key topic", "path": "/pp/ubx/0236/ip"},
            {"description": "IP correction topic for EU region", "path": "/pp/ip/eu"},
            {"description": "AssistNow (MGA) topic", "path": "/pp/ubx/mga"},
        ],
        "subscriptionsTitle": "PointPerfect subscriptions",
        "rotatingKeyTitle": "PointPerfect dynamic keys",
    }
    body.update(over)
    return body


def ntrip_body(port="2101", **over):
    body = {
        "supportsMqtt": False,
        "supportsLband": False,
        "rtcmCredentials": {
            "endpoint": "ppntrip.services.u-blox.com",
            "httpPort": port,
            "userName": "user-1",
            "password": "s3cret-pass",
            "mountPoint": "NEAR-RTCM",
        },
    }
    body.update(over)
    return body


def make_pair(cn="9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f", days=365, key=None):
    """(certificate PEM, RSA private key PEM 'BEGIN RSA PRIVATE KEY', not_after) self-signed, like the ZTP answer."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    not_after = now + datetime.timedelta(days=days)
    cert = self_signed(name, key, now - datetime.timedelta(days=1), not_after)
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_to_pem(key), not_after
