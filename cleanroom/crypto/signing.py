"""Report signatures: each party signs the exact released report bytes with Ed25519.

The signing key is derived from the party's TLS private key (HKDF-SHA256, RFC 5869), and
its public half is embedded in the pinned certificate by ``cleanroom certs init``, so the
certificate fingerprint in the contract pins it too. A signed report lets either party show
later what was released and that the other side accepted the same bytes.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cleanroom.errors import InputError

_SIGNING_CONTEXT = b"cleanroom report signature v1\x00"


def signing_key_from_tls_key(pem: bytes) -> Ed25519PrivateKey:
    """The party's Ed25519 report-signing key, derived from its TLS private key with HKDF-SHA256.

    Deriving it (RFC 5869) instead of storing a second secret keeps one key file per party.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise InputError("the TLS private key is not an unencrypted PEM private key") from None
    material = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    seed = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"cleanroom", info=b"report signing key v1"
    ).derive(material)
    return Ed25519PrivateKey.from_private_bytes(seed)


def sign_report(key: Ed25519PrivateKey, report_bytes: bytes) -> bytes:
    return key.sign(_SIGNING_CONTEXT + report_bytes)


def verify_report_signature(
    public_key: Ed25519PublicKey, signature: bytes, report_bytes: bytes
) -> bool:
    try:
        public_key.verify(signature, _SIGNING_CONTEXT + report_bytes)
    except InvalidSignature:
        return False
    return True
