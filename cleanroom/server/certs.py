"""Pinned TLS identities: self-signed certificates whose SHA-256 the contract names."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cleanroom.errors import AuthenticationError, InputError

VALIDITY = dt.timedelta(days=825)


def read_pem(path: str | Path, what: str) -> bytes:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None
    if b"-----BEGIN" not in data:
        raise InputError(f"{what} {path} is not a PEM file")
    return data


def load_certificate(path: str | Path, what: str = "certificate") -> x509.Certificate:
    data = read_pem(path, what)
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise InputError(f"{what} {path} is not a valid X.509 certificate") from None


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex: what contracts pin."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def fingerprint_of_pem(pem: bytes) -> str:
    try:
        return fingerprint(x509.load_pem_x509_certificate(pem))
    except ValueError:
        raise AuthenticationError("the peer presented an unreadable certificate") from None


def server_name(certificate: x509.Certificate) -> str:
    """The first DNS name the certificate is valid for: what the client checks it against."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    dns = names.get_values_for_type(x509.DNSName) if names else []
    return dns[0] if dns else "localhost"


def check_pinned(path: str | Path, expected: str, role: str, what: str) -> bytes:
    """Read a certificate and insist it is the one the contract names for ``role``."""
    certificate = load_certificate(path, what)
    actual = fingerprint(certificate)
    if actual != expected:
        raise AuthenticationError(
            f"{what} {path} has fingerprint {actual[:16]}..., but the contract pins "
            f"{expected[:16]}... for the {role} (parties.{role}.certificate_sha256)"
        )
    return read_pem(path, what)


def init_certificate(
    directory: str | Path, name: str, host: str | None = None
) -> tuple[Path, Path, str]:
    """Write NAME.crt and NAME.key (ECDSA P-256, self-signed) and return the fingerprint."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    for path in (cert_path, key_path):
        if path.exists():
            raise InputError(
                f"{path} already exists; remove it first (a new key changes the fingerprint)"
            )
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    alt_names: list[x509.GeneralName] = [x509.DNSName(host)] if host and not _is_ip(host) else []
    alt_names += [x509.DNSName(name), x509.DNSName("localhost")]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    if host and _is_ip(host):
        alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, fingerprint(certificate)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
