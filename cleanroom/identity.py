"""Pinned TLS identities: self-signed certificates whose SHA-256 the contract names."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cleanroom.contract import is_valid_name
from cleanroom.crypto.signing import (
    prove_possession,
    sign_report,
    signing_key_from_tls_key,
    verify_possession,
    verify_report_signature,
)
from cleanroom.errors import AuthenticationError, InputError, IntegrityError
from cleanroom.report.document import Report

VALIDITY = dt.timedelta(days=825)
SIGNING_KEY_URI = "urn:cleanroom:ed25519:"
POSSESSION_URI = "urn:cleanroom:ed25519-possession:"


def read_pem(path: str | os.PathLike[str], what: str) -> bytes:
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


def load_certificate(path: str | os.PathLike[str], what: str = "certificate") -> x509.Certificate:
    data = read_pem(path, what)
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise InputError(f"{what} {path} is not a valid X.509 certificate") from None


def load_key_pair(
    certificate_path: str | os.PathLike[str],
    key_path: str | os.PathLike[str],
    certificate_what: str,
    key_what: str,
) -> tuple[bytes, bytes]:
    """The PEM certificate and private key, once the key is known to be the certificate's.

    gRPC would only say "Invalid private key" in its C-core log and fail every handshake
    (or refuse to bind), which reads like a wrong pin; checking here names the files.
    """
    certificate = load_certificate(certificate_path, certificate_what)
    key_pem = read_pem(key_path, key_what)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InputError(f"{key_what} {key_path} is not an unencrypted PEM private key") from None
    if _public_der(key.public_key()) != _public_der(certificate.public_key()):
        raise InputError(
            f"{key_what} {key_path} does not match the certificate {certificate_path} (a "
            "different key pair): use the .key file written with that certificate"
        )
    return read_pem(certificate_path, certificate_what), key_pem


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex: what contracts pin."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def fingerprint_of_pem(pem: bytes) -> str:
    try:
        return fingerprint(x509.load_pem_x509_certificate(pem))
    except ValueError:
        raise AuthenticationError("the peer presented an unreadable certificate") from None


def require_signing_key(pem: bytes, what: str) -> Ed25519PublicKey:
    """The report-signing key of a pinned certificate; certificates must come from certs init,
    which also writes the proof that the certificate's maker holds that key."""
    certificate = x509.load_pem_x509_certificate(pem)
    key = signing_public_key(certificate)
    if key is None:
        raise AuthenticationError(
            f"{what} carries no report-signing key: make the certificate with 'cleanroom certs init'"
        )
    proof = _uri_value(certificate, POSSESSION_URI)
    try:
        valid = proof is not None and verify_possession(
            key, bytes.fromhex(proof), _public_der(certificate.public_key())
        )
    except ValueError:
        valid = False
    if not valid:
        raise AuthenticationError(
            f"{what} carries no valid proof that its maker holds its report-signing key (made by "
            "an older cleanroom, or its signing key was copied from another certificate): make "
            "a new one with 'cleanroom certs init' and pin its fingerprint in the contract"
        )
    return key


def require_distinct_signing_keys(
    brand: Ed25519PublicKey, partner: Ed25519PublicKey, what: str
) -> None:
    """Two parties must never share a signing key: one party's signature would stand for both."""
    if brand.public_bytes_raw() == partner.public_bytes_raw():
        raise AuthenticationError(
            f"{what}: the brand's and the partner's certificates carry the same report-signing "
            "key; each party must make its own certificate with 'cleanroom certs init'"
        )


def verify_signed_report(report: Report, certificates: dict[str, Path]) -> None:
    """Check a report file's signatures against the parties' pinned certificates: each made
    as its own role, with its own party's key, the two keys different."""
    keys = {
        role: require_signing_key(
            read_pem(path, f"{role} certificate"), f"{role} certificate {path}"
        )
        for role, path in certificates.items()
    }
    if len({key.public_bytes_raw() for key in keys.values()}) < len(keys):
        raise IntegrityError(
            "the brand and partner certificates carry the same report-signing key: one party's "
            "signature would count as both (pass each party's own pinned certificate)"
        )
    entries = [report.signatures.get(role) or {} for role in certificates]
    if len(entries) == 2 and entries[0].get("public_key") == entries[1].get("public_key"):
        raise IntegrityError("the report's two signatures were made with the same key")
    for role, key in keys.items():
        path = certificates[role]
        entry = report.signatures.get(role)
        if not entry:
            raise IntegrityError(f"the report carries no {role} signature")
        if entry.get("public_key") != key.public_bytes_raw().hex():
            raise IntegrityError(
                f"the {role} signature was made with a key other than {path} carries"
            )
        try:
            signature = bytes.fromhex(entry["signature"])
        except (KeyError, TypeError, ValueError):
            raise IntegrityError(f"the {role} signature is not hex") from None
        if not verify_report_signature(key, signature, report.signed_bytes(), role=role):
            raise IntegrityError(
                f"the {role} signature does not verify: the report was altered, or that "
                f"signature was not made as the {role}"
            )


def server_name(certificate: x509.Certificate) -> str:
    """The first DNS name the certificate is valid for: what the client checks it against."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    dns = names.get_values_for_type(x509.DNSName) if names else []
    return dns[0] if dns else "localhost"


def check_pinned(path: str | os.PathLike[str], expected: str, role: str, what: str) -> bytes:
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
    directory: str | os.PathLike[str], name: str, host: str | None = None
) -> tuple[Path, Path, str]:
    """Write NAME.crt and NAME.key (ECDSA P-256, self-signed) and return the fingerprint."""
    if not is_valid_name(name):
        # The name becomes two file names in DIRECTORY and the contract's party name.
        raise InputError(
            f"--name {name!r}: not a valid party name (letters, digits, . _ -, "
            "starting with a letter or digit, at most 128 characters)"
        )
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
    signing_key = signing_key_from_tls_key(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    # The report-signing public key rides in the pinned certificate, so pinning one pins both,
    # with the signing key's proof that whoever made this certificate holds it.
    proof = prove_possession(signing_key, _public_der(key.public_key()))
    alt_names += [
        x509.UniformResourceIdentifier(
            SIGNING_KEY_URI + signing_key.public_key().public_bytes_raw().hex()
        ),
        x509.UniformResourceIdentifier(POSSESSION_URI + proof.hex()),
    ]
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


def _uri_value(certificate: x509.Certificate, prefix: str) -> str | None:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in names.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    return None


def signing_public_key(certificate: x509.Certificate) -> Ed25519PublicKey | None:
    """The report-signing key a certificate made by ``cleanroom certs init`` carries."""
    value = _uri_value(certificate, SIGNING_KEY_URI)
    if value is None:
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(value))
    except ValueError:
        return None


class ReportSigner:
    """Signs released reports as one role ("brand" or "partner") with this party's Ed25519
    key: the sessions get one of these, so that the protocol and the store never hold the
    key itself, and the store only keeps the signatures it is given."""

    def __init__(self, key: Ed25519PrivateKey, role: str) -> None:
        self.role = role
        self._key = key
        self.public_key = key.public_key()

    def sign(self, report_bytes: bytes) -> dict[str, str]:
        """The signature entry stored with a report: the public key and the signature, in hex."""
        return {
            "public_key": self.public_key.public_bytes_raw().hex(),
            "signature": sign_report(self._key, report_bytes, role=self.role).hex(),
        }
