"""Report signatures: each party signs the exact released report bytes with Ed25519.

The signing key is derived from the party's TLS private key (HKDF-SHA256, RFC 5869), and
its public half is embedded in the pinned certificate by ``cleanroom certs init``, so the
certificate fingerprint in the contract pins it too. A signed report lets either party show
later what was released and that the other side accepted the same bytes.

Each signature is bound to its role: the signed message is a fixed context string, the
role ("brand" or "partner") and the report bytes, so the brand's signature can never be
presented as the partner's acknowledgement (or the reverse), even under one key. The
certificate also carries a proof of possession (:func:`prove_possession`): the signing key's
signature over the certificate's TLS public key, so nobody can put another party's signing
key into their own certificate (docs/threat-model.md, "Report signatures").
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cleanroom.errors import InputError

_SIGNING_CONTEXT = b"cleanroom report signature v2\x00"
_POSSESSION_CONTEXT = b"cleanroom signing key possession v1\x00"
ROLES = ("brand", "partner")


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


def _signed_message(role: str, report_bytes: bytes) -> bytes:
    if role not in ROLES:
        raise ValueError(f"a report signature's role is one of {ROLES}, not {role!r}")
    return _SIGNING_CONTEXT + role.encode() + b"\x00" + report_bytes


def sign_report(key: Ed25519PrivateKey, report_bytes: bytes, *, role: str) -> bytes:
    """Sign the report bytes as ``role``; a signature made as one role never verifies as the other."""
    return key.sign(_signed_message(role, report_bytes))


def verify_report_signature(
    public_key: Ed25519PublicKey, signature: bytes, report_bytes: bytes, *, role: str
) -> bool:
    try:
        public_key.verify(signature, _signed_message(role, report_bytes))
    except InvalidSignature:
        return False
    return True


def prove_possession(key: Ed25519PrivateKey, tls_public_key_der: bytes) -> bytes:
    """The signing key's signature over the certificate's TLS public key (DER SubjectPublicKeyInfo).

    The certificate is self-signed with the TLS key, so the TLS key vouches for the signing
    key it carries; this signature is the signing key's half of that binding, which only
    its holder can make (the proof-of-possession idea of RFC 4211 section 4)."""
    return key.sign(_POSSESSION_CONTEXT + tls_public_key_der)


def verify_possession(
    public_key: Ed25519PublicKey, proof: bytes, tls_public_key_der: bytes
) -> bool:
    try:
        public_key.verify(proof, _POSSESSION_CONTEXT + tls_public_key_der)
    except InvalidSignature:
        return False
    return True
