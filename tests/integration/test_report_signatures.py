"""Role-bound signatures and distinct keys, end to end: `cleanroom report verify`, `serve`
and the client refuse identical keys and a certificate that carries another party's key."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest
from cleanroom_client import AuthenticationError, Client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support import tool

from cleanroom.identity import fingerprint, load_certificate

pytestmark = pytest.mark.slow


def verify(directory, report: str, brand: str, partner: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            tool("cleanroom"),
            "report",
            "verify",
            report,
            "--brand-cert",
            brand,
            "--partner-cert",
            partner,
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def signed(deploy):
    site = deploy()
    report = site.client().run(site.directory / "audience.csv")
    (site.directory / "report.json").write_bytes(report.to_json())
    return site


def test_report_verify_refuses_identical_keys_and_a_signature_in_the_wrong_role(signed):
    directory = signed.directory
    good = verify(directory, "report.json", "certs/acme.crt", "certs/newsco.crt")
    assert good.returncode == 0, good.stderr

    same = verify(directory, "report.json", "certs/acme.crt", "certs/acme.crt")
    assert same.returncode == 9 and "same report-signing key" in same.stderr

    data = json.loads((directory / "report.json").read_text())
    data["signatures"]["partner"] = data["signatures"]["brand"]  # the brand's signature twice
    (directory / "twice.json").write_text(json.dumps(data))
    twice = verify(directory, "twice.json", "certs/acme.crt", "certs/newsco.crt")
    assert twice.returncode == 9 and "same key" in twice.stderr


def make_certificate(directory, name: str, key, uris: list[str]) -> str:
    """certs/NAME.crt, self-signed with ``key``, carrying ``uris``; returns its fingerprint."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsco")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("newsco"), x509.DNSName("localhost")]
                + [x509.UniformResourceIdentifier(uri) for uri in uris]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (directory / f"certs/{name}.crt").write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
    )
    return fingerprint(certificate)


def signing_uris(directory, name: str) -> list[str]:
    names = load_certificate(directory / f"certs/{name}.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    return [
        uri
        for uri in names.value.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith("urn:cleanroom:")
    ]


def repinned(directory, partner_fingerprint: str) -> None:
    """Contract and config naming another partner certificate (the same contract otherwise)."""
    contract = (directory / "contract.toml").read_text()
    newsco = fingerprint(load_certificate(directory / "certs/newsco.crt"))
    (directory / "repinned.toml").write_text(contract.replace(newsco, partner_fingerprint))


def serve(directory, partner_certificate: str) -> subprocess.CompletedProcess[str]:
    config = (directory / "brand.toml").read_text()
    config = config.replace('path = "contract.toml"', 'path = "repinned.toml"')
    config = config.replace('"certs/newsco.crt"', f'"{partner_certificate}"')
    (directory / "repinned-brand.toml").write_text(config)
    return subprocess.run(
        [tool("cleanroom"), "serve", "--config", "repinned-brand.toml"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_refuses_a_partner_certificate_with_the_brands_signing_key(deploy):
    directory = deploy().directory
    # Another TLS key copying the brand's signing key (and its proof, which binds the brand's
    # TLS key): the proof of possession fails.
    thief = make_certificate(
        directory, "thief", ec.generate_private_key(ec.SECP256R1()), signing_uris(directory, "acme")
    )
    repinned(directory, thief)
    stolen = serve(directory, "certs/thief.crt")
    assert stolen.returncode == 5 and "no valid proof" in stolen.stderr

    # A second certificate on the brand's own key pair: a valid proof, but the same signing
    # key as the brand, so the brand's signature would count as the partner's.
    brand_key = serialization.load_pem_private_key(
        (directory / "certs/acme.key").read_bytes(), password=None
    )
    twin = make_certificate(directory, "twin", brand_key, signing_uris(directory, "acme"))
    repinned(directory, twin)
    same = serve(directory, "certs/twin.crt")
    assert same.returncode == 5 and "carry the same report-signing key" in same.stderr


def test_the_client_refuses_a_brand_certificate_on_its_own_key(deploy):
    site = deploy()
    directory = site.directory
    own_key = serialization.load_pem_private_key(
        (directory / "certs/newsco.key").read_bytes(), password=None
    )
    twin = make_certificate(directory, "twin", own_key, signing_uris(directory, "newsco"))
    acme = fingerprint(load_certificate(directory / "certs/acme.crt"))
    (directory / "twin.toml").write_text(
        (directory / "contract.toml").read_text().replace(acme, twin)
    )
    with pytest.raises(AuthenticationError, match="same report-signing key"):
        Client(
            site.address,
            contract=directory / "twin.toml",
            certificate=directory / "certs/newsco.crt",
            private_key=directory / "certs/newsco.key",
            server_certificate=directory / "certs/twin.crt",
            state=directory / "partner-state.db",
        )
