"""Tests of pointperfect_sim.pki: persistent CA, server certs with the right SANs, per-device RSA client certs."""

import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pointperfect_sim.pki import PKI, signed_by


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


def test_ca_created_once_and_reloaded(tmp_path):
    first = PKI(tmp_path)
    ca_bytes = first.ca_path.read_bytes()
    assert (os.stat(first.ca_key_path).st_mode & 0o777) == 0o600
    second = PKI(tmp_path)
    assert second.ca_path.read_bytes() == ca_bytes
    ca = x509.load_pem_x509_certificate(ca_bytes)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    # A cert issued by the reloaded PKI chains to the original CA.
    cert_pem, _ = second.issue_client("dev")
    assert signed_by(x509.load_pem_x509_certificate(cert_pem.encode()), ca)


def test_concurrent_processes_share_one_ca(tmp_path):
    code = "import sys; from pointperfect_sim.pki import PKI; print(PKI(sys.argv[1]).ca_path.read_text())"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=30)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outputs[0].startswith("-----BEGIN CERTIFICATE-----")
    assert outputs.count(outputs[0]) == 3


def test_client_cert_shape(pki):
    cert_pem, key_pem = pki.issue_client("3f1c1b7e-client", days=365)
    assert key_pem.startswith("-----BEGIN RSA PRIVATE KEY-----\n")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "3f1c1b7e-client"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert signed_by(cert, pki.ca_cert)
    left = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=364) < left <= dt.timedelta(days=365)
    assert cert.not_valid_before_utc <= dt.datetime.now(dt.timezone.utc)


def test_each_device_gets_its_own_key(pki):
    keys = {pki.issue_client(f"dev-{i}")[1] for i in range(4)}
    assert len(keys) == 4


def test_issue_client_is_fast(pki):
    pki.issue_client("warm-up")
    start = time.monotonic()
    for i in range(5):
        pki.issue_client(f"fast-{i}")
    assert time.monotonic() - start < 5


def test_reissue_with_same_key_and_short_or_negative_lifetime(pki):
    _, key_pem = pki.issue_client("dev")
    cert_pem, key2 = pki.issue_client("dev", days=5, key_pem=key_pem)
    assert key2 == key_pem
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    left = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=4, hours=23) < left <= dt.timedelta(days=5)
    expired = x509.load_pem_x509_certificate(pki.issue_client("dev", days=-1, key_pem=key_pem)[0].encode())
    assert expired.not_valid_after_utc < dt.datetime.now(dt.timezone.utc)
    assert expired.not_valid_before_utc < expired.not_valid_after_utc


def test_server_cert_sans_and_eku(pki):
    cert_path, key_path = pki.issue_server()
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    assert key_path.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert (os.stat(key_path).st_mode & 0o777) == 0o600
    assert signed_by(cert, pki.ca_cert)


def test_server_cert_passes_tls_verification_by_ip_and_name(pki):
    """A real TLS handshake: client verifies the server against the CA for both 127.0.0.1 and localhost."""
    cert_path, key_path = pki.issue_server(("127.0.0.1", "localhost"))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_path, key_path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept(n):
        for _ in range(n):
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=accept, args=(3,), daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_path))
    for name in ("127.0.0.1", "localhost"):
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.version() is not None
            tls.sendall(b"x")
    # A name not in the SAN list must fail verification.
    with pytest.raises(ssl.SSLCertVerificationError), socket.create_connection(("127.0.0.1", port)) as raw:
        client_ctx.wrap_socket(raw, server_hostname="example.invalid")
    thread.join(timeout=5)
    listener.close()


def test_server_cert_files_are_stable_and_repaired(tmp_path):
    pki = PKI(tmp_path)
    cert_path, key_path = pki.issue_server(("127.0.0.1", "localhost"))
    first = cert_path.read_bytes(), key_path.read_bytes()
    assert pki.issue_server(("127.0.0.1", "localhost")) == (cert_path, key_path)
    assert (cert_path.read_bytes(), key_path.read_bytes()) == first  # reused: no half-replaced pair for readers
    other_cert, _ = pki.issue_server(("localhost",))
    assert other_cert != cert_path
    key_path.write_text("garbage")  # a broken pair is replaced by a fresh one
    pki.issue_server(("127.0.0.1", "localhost"))
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert_path.read_bytes() != first[0]
