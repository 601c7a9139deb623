"""Report signatures are bound to a role, two parties never share a key, and a certificate
proves that its maker holds the signing key it carries."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from cleanroom.crypto.signing import (
    prove_possession,
    sign_report,
    signing_key_from_tls_key,
    verify_possession,
    verify_report_signature,
)
from cleanroom.errors import AuthenticationError, IntegrityError
from cleanroom.identity import (
    POSSESSION_URI,
    SIGNING_KEY_URI,
    ReportSigner,
    init_certificate,
    require_signing_key,
    signing_public_key,
    verify_signed_report,
)
from cleanroom.report.document import Report, dumps
from cleanroom.store.state import StateStore


@given(st.binary(max_size=256))
def test_a_signature_verifies_only_as_the_role_it_was_made_as(report_bytes):
    key = Ed25519PrivateKey.generate()
    as_brand = sign_report(key, report_bytes, role="brand")
    assert verify_report_signature(key.public_key(), as_brand, report_bytes, role="brand")
    assert not verify_report_signature(key.public_key(), as_brand, report_bytes, role="partner")
    as_partner = sign_report(key, report_bytes, role="partner")
    assert as_partner != as_brand
    assert verify_report_signature(key.public_key(), as_partner, report_bytes, role="partner")


def test_an_unknown_role_is_refused():
    with pytest.raises(ValueError, match="role"):
        sign_report(Ed25519PrivateKey.generate(), b"{}", role="auditor")


def test_the_proof_of_possession_binds_the_signing_key_to_one_tls_key():
    signing = Ed25519PrivateKey.generate()
    tls, other = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        for _ in range(2)
    )
    proof = prove_possession(signing, tls)
    assert verify_possession(signing.public_key(), proof, tls)
    assert not verify_possession(signing.public_key(), proof, other)
    assert not verify_possession(Ed25519PrivateKey.generate().public_key(), proof, tls)
    # a report signature is never a proof of possession, nor the reverse
    assert not verify_report_signature(signing.public_key(), proof, tls, role="brand")


@pytest.fixture(scope="module")
def parties(tmp_path_factory):
    directory = tmp_path_factory.mktemp("parties")
    return {name: init_certificate(directory, name) for name in ("acme", "newsco")}


def test_certs_init_writes_a_valid_proof_of_possession(parties):
    cert_path, key_path, _ = parties["acme"]
    key = require_signing_key(cert_path.read_bytes(), "acme")
    assert key.public_bytes_raw() == (
        signing_key_from_tls_key(key_path.read_bytes()).public_key().public_bytes_raw()
    )


def certificate_with(uris: list[str], tmp_path, name: str = "thief") -> bytes:
    """A self-signed certificate, made with a fresh TLS key, carrying the given URIs."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), *(x509.UniformResourceIdentifier(u) for u in uris)]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def brand_uris(parties) -> list[str]:
    brand = x509.load_pem_x509_certificate(parties["acme"][0].read_bytes())
    names = brand.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [u for u in names.get_values_for_type(x509.UniformResourceIdentifier)]


def test_a_certificate_carrying_the_brands_signing_key_is_refused(parties, tmp_path):
    uris = brand_uris(parties)
    key_only = [u for u in uris if u.startswith(SIGNING_KEY_URI)]
    assert len(key_only) == 1 and any(u.startswith(POSSESSION_URI) for u in uris)
    for stolen in (key_only, uris):  # without a proof, and with the brand's proof copied
        pem = certificate_with(stolen, tmp_path)
        assert signing_public_key(x509.load_pem_x509_certificate(pem)) is not None
        with pytest.raises(AuthenticationError, match="no valid proof"):
            require_signing_key(pem, "partner certificate")


def signed_report(parties) -> Report:
    data = {
        "contract_id": "c",
        "session_id": "s" * 32,
        "overlap": {},
        "attributes": [],
        "partner_size": 1,
    }
    signatures = {}
    for role, name in (("brand", "acme"), ("partner", "newsco")):
        key = signing_key_from_tls_key(parties[name][1].read_bytes())
        signatures[role] = {
            "public_key": key.public_key().public_bytes_raw().hex(),
            "signature": sign_report(key, dumps(data), role=role).hex(),
        }
    return Report(data, signatures=signatures)


def test_verify_accepts_both_roles_and_refuses_swapped_or_identical_signatures(parties):
    certificates = {"brand": parties["acme"][0], "partner": parties["newsco"][0]}
    report = signed_report(parties)
    verify_signed_report(report, certificates)

    identical = Report(
        report.to_dict(),
        signatures={"brand": report.signatures["brand"], "partner": report.signatures["brand"]},
    )
    with pytest.raises(IntegrityError, match="same key"):
        verify_signed_report(identical, certificates)
    with pytest.raises(IntegrityError, match="same report-signing key"):
        verify_signed_report(report, {"brand": parties["acme"][0], "partner": parties["acme"][0]})

    # the brand's own key signing as the partner: right key, wrong role
    brand_key = signing_key_from_tls_key(parties["acme"][1].read_bytes())
    as_other_role = {
        "public_key": brand_key.public_key().public_bytes_raw().hex(),
        "signature": sign_report(brand_key, report.signed_bytes(), role="partner").hex(),
    }
    wrong_role = Report(report.to_dict(), signatures={**report.signatures, "brand": as_other_role})
    with pytest.raises(IntegrityError, match="not made as the brand"):
        verify_signed_report(wrong_role, certificates)


def test_the_state_refuses_a_report_signed_twice_by_one_key(tmp_path, make_contract):
    contract = make_contract()
    store = StateStore(tmp_path / "s.db")
    store.begin_session("s1", contract, "peer")
    key = Ed25519PrivateKey.generate()
    report = {"overlap": {"total": 120}, "transcript_sha256": "t" * 64}
    store.commit_release(
        "s1",
        contract,
        Report(report, signatures={"brand": ReportSigner(key, "brand").sign(dumps(report))}),
    )
    store.add_signature(
        "s1",
        "partner",
        sign_report(key, dumps(report), role="partner"),
        key.public_key().public_bytes_raw(),
    )
    with pytest.raises(IntegrityError, match="two signatures by one key"):
        store.verify_records()
    assert set(store.signatures("s1")) == {"brand", "partner"}  # both were stored, and refused
