from __future__ import annotations

import datetime as dt

import pytest

from cleanroom.contract import load_contract, parse_contract
from cleanroom.demo import contract_text
from cleanroom.errors import ContractError

FP_A, FP_B = "a" * 64, "b" * 64


def text(**overrides: object) -> str:
    return contract_text(FP_A, FP_B, **overrides)  # type: ignore[arg-type]


def test_valid_contract_parses_with_its_fields():
    contract = parse_contract(text().encode())
    assert contract.id == "acme-x-newsco-demo"
    assert contract.keys == ("email", "phone")
    assert contract.segments == ("loyal", "lapsed", "prospect")
    assert contract.expires == dt.date(2099, 12, 31)
    assert contract.set_difference_min == 50 and contract.set_difference_action == "refuse"
    assert not contract.overlap_only


def test_hash_is_the_sha256_of_the_exact_bytes():
    import hashlib

    data = text().encode()
    assert parse_contract(data).sha256 == hashlib.sha256(data).hexdigest()
    # a different line ending is a different contract
    assert parse_contract(data.replace(b"\n", b"\r\n")).sha256 != parse_contract(data).sha256


def test_no_segments_means_the_single_segment_all():
    contract = parse_contract(text(segments=()).encode())
    assert contract.segments == ("all",)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('normalization = "pair-1"', 'normalization = "pair-9"', "contract.normalization"),
        ('default_region = "US"', 'default_region = "XX"', "contract.default_region"),
        ('keys = ["email", "phone"]', 'keys = ["email", "fax"]', "match.keys"),
        ('keys = ["email", "phone"]', 'keys = ["email", "email"]', "match.keys"),
        ('keys = ["email", "phone"]', "keys = []", "match.keys"),
        ("min_overlap = 50", "min_overlap = -1", "release.min_overlap"),
        ("min_set_size = 1000", 'min_set_size = "1000"', "release.min_set_size"),
        (
            "max_invalid_fraction = 0.2",
            "max_invalid_fraction = 1.5",
            "release.max_invalid_fraction",
        ),
        ('mechanism = "discrete_laplace"', 'mechanism = "laplace"', "privacy.mechanism"),
        ("epsilon_per_session = 1.0", "epsilon_per_session = 0", "privacy.epsilon_per_session"),
        ("epsilon_total = 10.0", "epsilon_total = 0.5", "privacy.epsilon_total"),
        (
            f'certificate_sha256 = "{FP_A}"',
            'certificate_sha256 = "xyz"',
            "parties.brand.certificate_sha256",
        ),
        ("expires = 2099-12-31", "expires = 2099-12-31T00:00:00", "contract.expires"),
        ("[privacy]", "[privacy]\nepsilon = 3", "privacy.epsilon"),
    ],
)
def test_errors_name_the_field(old: str, new: str, field: str):
    source = text()
    assert old in source
    with pytest.raises(ContractError, match=field.replace(".", r"\.")):
        parse_contract(source.replace(old, new, 1).encode(), source="c.toml")


def test_missing_table_and_bad_toml_are_named():
    with pytest.raises(ContractError, match=r"\[privacy\]: missing table"):
        parse_contract(text().split("[privacy]")[0].encode())
    with pytest.raises(ContractError, match="not valid TOML"):
        parse_contract(b"[contract\nid=")


def test_same_certificate_for_both_parties_is_refused():
    with pytest.raises(ContractError, match="different certificates"):
        parse_contract(contract_text(FP_A, FP_A).encode())


def test_expiry_is_checked(tmp_path):
    contract = parse_contract(text(expires="2020-01-01").encode(), source="old.toml")
    with pytest.raises(ContractError, match="expired on 2020-01-01"):
        contract.check_not_expired()
    parse_contract(text().encode()).check_not_expired(dt.date(2099, 12, 31))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ContractError, match="contract file not found"):
        load_contract(tmp_path / "nope.toml")


def test_dst_binds_version_and_contract_hash():
    contract = parse_contract(text().encode())
    dst = contract.hash_to_curve_dst()
    assert contract.sha256.encode() in dst and dst.startswith(b"CLEANROOM-V1-")
    assert len(dst) <= 255  # RFC 9380 section 5.3.3
