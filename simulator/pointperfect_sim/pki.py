"""A small persistent PKI for the simulated world: one CA, server certs (API/broker/caster), client certs per device.

The CA lives in the PKI directory and survives restarts; every device key is freshly generated and used once.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import re
import threading
from collections import deque
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .proc import write_atomic

KEY_BITS = 2048
CA_DAYS = 3650
SERVER_DAYS = 825
DEFAULT_SERVER_NAMES = ("127.0.0.1", "localhost")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


class _KeyPool:
    """Pre-generates fresh RSA keys in a background thread; each key is handed out exactly once, never reused."""

    def __init__(self, size: int = 4) -> None:
        self._size = size
        self._keys: deque[rsa.RSAPrivateKey] = deque()
        self._lock = threading.Lock()
        self._filling = False

    def take(self) -> rsa.RSAPrivateKey:
        with self._lock:
            key = self._keys.popleft() if self._keys else None
        self._refill()
        return key if key is not None else _new_key()

    def _refill(self) -> None:
        with self._lock:
            if self._filling or len(self._keys) >= self._size:
                return
            self._filling = True
        threading.Thread(target=self._fill, name="pki-keypool", daemon=True).start()

    def _fill(self) -> None:
        try:
            while True:
                with self._lock:
                    if len(self._keys) >= self._size:
                        return
                key = _new_key()
                with self._lock:
                    self._keys.append(key)
        finally:
            with self._lock:
                self._filling = False


_POOL = _KeyPool()


def key_to_pem(key: rsa.RSAPrivateKey) -> str:
    """Traditional OpenSSL RSA PEM (`BEGIN RSA PRIVATE KEY`), as the real ZTP service returns."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def _key_usage(*allowed: str) -> x509.KeyUsage:
    """A KeyUsage allowing only the `allowed` uses (cryptography wants each of its nine flags named)."""
    flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")  # fmt: skip
    return x509.KeyUsage(**{flag: flag in allowed for flag in flags})


def self_signed(
    name: x509.Name, key, not_before: dt.datetime, not_after: dt.datetime, extensions=()
) -> x509.Certificate:
    """A certificate `key` signs for itself (a CA, or a device certificate as the ZTP answer carries one);
    `extensions`: (extension, critical) pairs."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, hashes.SHA256())


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True when `ca`'s key signed `cert` (RSA PKCS#1 v1.5, as this PKI signs)."""
    try:
        ca.public_key().verify(
            cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
        )
    except InvalidSignature:
        return False
    return True


def _san(names) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


class PKI:
    """CA + issuing in `directory` (created if missing); `ca.pem`/`ca.key` are created once and then loaded."""

    def __init__(self, directory) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_path = self.dir / "ca.pem"
        self.ca_key_path = self.dir / "ca.key"
        with self._locked():
            if not (self.ca_path.exists() and self.ca_key_path.exists()):
                self._create_ca()
        self.ca_cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
        self._ca_key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), password=None)

    @contextmanager
    def _locked(self):
        """Inter-process lock so two processes sharing the directory never create two different CAs."""
        with open(self.dir / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _create_ca(self) -> None:
        key = _new_key()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PointPerfect Simulator"),
                x509.NameAttribute(NameOID.COMMON_NAME, "PointPerfect Simulator Root CA"),
            ]
        )
        now = _now()
        extensions = [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (_key_usage("digital_signature", "key_cert_sign", "crl_sign"), True),
            (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        ]
        cert = self_signed(name, key, now - dt.timedelta(days=1), now + dt.timedelta(days=CA_DAYS), extensions)
        write_atomic(self.ca_key_path, key_to_pem(key).encode(), 0o600)
        write_atomic(self.ca_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def _build(
        self, subject: x509.Name, key, not_before: dt.datetime, not_after: dt.datetime, *, eku, san=None
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
        )
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        return builder.sign(self._ca_key, hashes.SHA256())

    def issue_server(self, names=DEFAULT_SERVER_NAMES, days: float = SERVER_DAYS) -> tuple[Path, Path]:
        """A TLS server cert (SAN = names; IPs become IP SANs) in the PKI dir; returns (cert_path, key_path).

        The files for a set of names are stable: a still-valid pair (>= min(days, 30) days left, same CA, key matches)
        is reused, so the API simulator, broker and caster sharing one PKI never see a half-replaced pair.
        """
        names = tuple(names)
        slug = re.sub(r"[^A-Za-z0-9.-]+", "_", "_".join(names))[:80]
        cert_path = self.dir / f"server-{slug}.pem"
        key_path = self.dir / f"server-{slug}.key"
        with self._locked():
            if self._reusable(cert_path, key_path, min(days, 30)):
                return cert_path, key_path
            key = _POOL.take()
            now = _now()
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
            cert = self._build(
                subject,
                key,
                now - dt.timedelta(hours=1),
                now + dt.timedelta(days=days),
                eku=ExtendedKeyUsageOID.SERVER_AUTH,
                san=_san(names),
            )
            write_atomic(key_path, key_to_pem(key).encode(), 0o600)
            write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cert_path, key_path

    def _reusable(self, cert_path: Path, key_path: Path, min_days: float) -> bool:
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError):
            return False
        return (
            cert.issuer == self.ca_cert.subject
            and cert.public_key().public_numbers() == key.public_key().public_numbers()
            and cert.not_valid_after_utc - _now() >= dt.timedelta(days=min_days)
            and signed_by(cert, self.ca_cert)
        )

    def issue_client(self, cn: str, days: float = 365, key_pem: str | None = None) -> tuple[str, str]:
        """A clientAuth cert with CN=cn valid `days` from now (<= 0 gives an expired cert); returns (cert_pem, key_pem).

        A fresh key is generated unless `key_pem` is given (used to reissue the same device key with a new lifetime).
        """
        key = serialization.load_pem_private_key(key_pem.encode(), password=None) if key_pem else _POOL.take()
        now = _now()
        not_after = now + dt.timedelta(days=days)
        not_before = min(now - dt.timedelta(hours=1), not_after - dt.timedelta(days=1))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        cert = self._build(subject, key, not_before, not_after, eku=ExtendedKeyUsageOID.CLIENT_AUTH)
        return cert.public_bytes(serialization.Encoding.PEM).decode(), key_to_pem(key)
