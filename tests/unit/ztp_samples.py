"""Sample ZTP answers and certificates shared by the unit tests."""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

KEY_A = "0123456789abcdef0123456789abcdef"
KEY_B = "fedcba9876543210fedcba9876543210"


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
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    return cert_pem, key_pem, not_after
