"""HTTPS for ``callstream serve``: a server context from a certificate and key, or a
development certificate authority kept in the data directory.

The AWS producer SDKs (the C producer and everything built on it, GStreamer ``kvssink``
included) speak only https: the embedded-C producer even cuts the scheme off the data
endpoint by skipping eight characters (kvs-wire §1.4). :func:`development_certificates`
creates, once, a private CA and a server certificate signed by it for ``localhost``,
the loopback addresses, this host's name and any names asked for; clients trust the CA
file (``AWS_CA_BUNDLE`` for boto3 and the AWS CLI, ``NODE_EXTRA_CA_CERTS`` for Node.js,
the producer SDK's ``caCertPath``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from callstream.durable import replace_file

__all__ = ["DevCertificates", "development_certificates", "server_context"]

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity Apple and browsers accept for a server certificate


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or newer) for ``cert_file`` (PEM, the chain after
    the certificate) and its ``key_file``; :class:`ValueError` naming the file if either
    cannot be used."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as err:
        raise ValueError(f"TLS: {err.filename} does not exist") from None
    except (ssl.SSLError, OSError) as err:
        raise ValueError(
            f"TLS: cannot use certificate {cert_file} with key {key_file}: {err}"
        ) from None
    return context


@dataclass(frozen=True, slots=True)
class DevCertificates:
    """Files of the development CA and the server certificate it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def development_certificates(tls_dir: Path, names: Iterable[str] = ()) -> DevCertificates:
    """The development CA and server certificate in ``tls_dir``, created on first use.

    The server certificate names ``localhost``, ``127.0.0.1``, ``::1``, this host's name
    and ``names``; it is issued again (by the same CA, so clients keep trusting it) when
    a name is missing or it is about to expire."""
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_file, ca_key_file = tls_dir / "ca.pem", tls_dir / "ca-key.pem"
    cert_file, key_file = tls_dir / "server.pem", tls_dir / "server-key.pem"
    wanted = _names(["localhost", "127.0.0.1", "::1", socket.gethostname(), *names])
    now = dt.datetime.now(dt.UTC)
    if ca_file.exists() and ca_key_file.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_file.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _ca_certificate(ca_key, now)
        replace_file(ca_key_file, _key_pem(ca_key))
        replace_file(ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
    if not _usable(cert_file, key_file, wanted, now):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _server_certificate(key, ca_key, ca_cert, wanted, now)
        replace_file(key_file, _key_pem(key))
        replace_file(cert_file, cert.public_bytes(serialization.Encoding.PEM))
    return DevCertificates(ca_file, cert_file, key_file)


def _names(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        value = value.strip().strip("[]")
        if value and value not in ("0.0.0.0", "::") and value not in out:
            out.append(value)
    return out


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "callstream development"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"callstream development CA {socket.gethostname()}"
            ),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: list[str],
    now: dt.datetime,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _usable(cert_file: Path, key_file: Path, names: list[str], now: dt.datetime) -> bool:
    """The server certificate exists, names everything wanted and has a month left."""
    if not (cert_file.exists() and key_file.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    present = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    }
    wanted = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    return wanted <= present and cert.not_valid_after_utc - now > dt.timedelta(days=30)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
