from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from cleanroom.brand.demo import contract_text
from cleanroom.contract import (
    MAX_DUMMY_RECORDS,
    MAX_NOISE_BOUND,
    RESERVED_ATTRIBUTE_NAMES,
)
from cleanroom.crypto import dlog
from cleanroom.errors import ContractError
from cleanroom.identifiers.kinds import KEY_KINDS
from cleanroom.privacy import accounting
from cleanroom.privacy.calibration import load_contract, parse_contract

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
        ('mechanism = "discrete_gaussian"', 'mechanism = "gaussian"', "privacy.mechanism"),
        ("delta = 1e-09", "", "privacy.delta"),
        ("delta = 1e-09", "delta = 0.5", "privacy.delta"),
        ("epsilon_match = 0.35", "epsilon_match = -1", "privacy.epsilon_match"),
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
    assert contract.sha256.encode() in dst and dst.startswith(b"CLEANROOM-V2-")
    assert len(dst) <= 255  # RFC 9380 section 5.3.3


@pytest.mark.parametrize("name", RESERVED_ATTRIBUTE_NAMES)
def test_attributes_may_not_take_a_key_kind_or_reserved_column_name(name: str):
    """An attribute ``email`` would make ``--column email=...`` ambiguous; ``segment`` and
    ``user_id`` are the brand's segment mapping and the lookalike export's id column."""
    with pytest.raises(
        ContractError, match=rf"c\.toml: release\.attributes: '{name}' is a reserved"
    ):
        parse_contract(text(attributes=("interest_travel", name)).encode(), source="c.toml")


def test_reserved_names_cover_every_key_kind():
    assert set(KEY_KINDS) <= set(RESERVED_ATTRIBUTE_NAMES)
    assert parse_contract(text(attributes=("Email", "segment_size")).encode()).attributes == (
        "Email",
        "segment_size",
    )


def test_the_noise_limit_is_half_of_what_elgamal_decrypts():
    """Sums are decrypted over records + partner noise bound: half the range is for records."""
    assert 2 * MAX_NOISE_BOUND == dlog.MAX_BOUND


MANY_ATTRIBUTES = tuple(f"attribute_{i}" for i in range(128))


def partner_bound_contract(epsilon: float, mechanism: str = "discrete_laplace") -> bytes:
    """One key and one segment: the partner's sensitivity (2 x 128) exceeds the brand's (130)."""
    return text(
        keys=("email",),
        segments=(),
        attributes=MANY_ATTRIBUTES,
        epsilon=epsilon,
        mechanism=mechanism,
        epsilon_match=epsilon / 4,
    ).encode()


def test_epsilon_too_small_for_the_partners_decryptable_noise_is_refused():
    accepted = parse_contract(partner_bound_contract(1.0))
    partner = accounting.partner_budget(accepted).release
    assert 0 < partner.bound() <= MAX_NOISE_BOUND
    assert accounting.brand_budget(accepted).release.bound() < partner.bound()
    # The release noise is checked before the dummies (whose limit a tiny epsilon also breaks).
    with pytest.raises(ContractError) as error:
        parse_contract(partner_bound_contract(1e-8), source="c.toml")
    message = str(error.value)
    assert message.startswith("c.toml: privacy.epsilon_per_session: too small")
    assert "partner's noise bound would be" in message and "could not be represented" in message
    bound = int(message.split("would be ")[1].split(",")[0])
    assert bound > MAX_NOISE_BOUND


def test_epsilon_too_small_for_the_brands_noise_is_refused_even_without_attributes():
    with pytest.raises(ContractError, match=r"privacy\.epsilon_per_session: too small"):
        parse_contract(text(attributes=(), epsilon=1e-12, epsilon_match=None).encode())


def test_an_absurdly_small_epsilon_is_refused_at_once():
    """Without the scale pre-check the tail search for the bound would never end."""
    with pytest.raises(ContractError, match=r"privacy\.epsilon_per_session: too small: .*scale"):
        parse_contract(partner_bound_contract(1e-300))


def test_gaussian_noise_that_cannot_be_represented_is_refused_by_field():
    with pytest.raises(ContractError, match=r"c\.toml: privacy\.epsilon_per_session: too small"):
        parse_contract(
            text(epsilon=1e-11, epsilon_total=1e-11, epsilon_match=None).encode(), source="c.toml"
        )


def test_missing_delta_for_the_gaussian_is_refused_by_field():
    source = text().replace("delta = 1e-09\n", "")
    with pytest.raises(
        ContractError, match=r"c\.toml: privacy\.delta: missing field: the discrete Gaussian"
    ):
        parse_contract(source.encode(), source="c.toml")


def test_the_default_mechanism_is_the_discrete_gaussian_with_rho_in_the_ledger():
    contract = parse_contract(text().replace('mechanism = "discrete_gaussian"\n', "").encode())
    assert contract.mechanism == "discrete_gaussian" and contract.ledger_unit == "rho"
    # (10, 1e-9) over the contract's life through OpenDP's zCDP conversion at delta / 2
    assert 1.0 < contract.ledger_total < 1.1
    assert contract.ledger_per_session == pytest.approx(contract.ledger_total / 10)
    laplace = parse_contract(text(mechanism="discrete_laplace").encode())
    assert laplace.ledger_unit == "epsilon" and laplace.ledger_per_session == 1.0


def test_a_matching_budget_too_small_for_the_pattern_count_is_refused():
    """16 segments and 3 keys: 17**3 patterns, each with its dummies."""
    segments = tuple(f"s{i}" for i in range(16))
    keys = ("email", "phone", "maid")
    parse_contract(text(segments=segments, keys=keys, epsilon_match=0.35, min_set_size=10).encode())
    with pytest.raises(ContractError) as error:
        parse_contract(
            text(segments=segments, keys=keys, epsilon_match=0.01).encode(), source="c.toml"
        )
    message = str(error.value)
    assert message.startswith("c.toml: privacy.epsilon_match: too small for 4913 match patterns")
    assert str(MAX_DUMMY_RECORDS) in message


def test_a_matching_budget_that_leaves_nothing_for_the_release_is_refused():
    with pytest.raises(ContractError, match=r"c\.toml: privacy\.epsilon_match: too large"):
        parse_contract(text(epsilon_match=0.5).encode(), source="c.toml")


def test_no_noise_needs_no_noise_bound():
    contract = parse_contract(text(mechanism="none", epsilon=1e-300).encode())
    assert contract.epsilon_per_session == 1e-300


def test_contract_check_names_the_field_and_exits_4(tmp_path):
    path = tmp_path / "tiny-epsilon.toml"
    path.write_bytes(partner_bound_contract(1e-9))
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cleanroom.brand.cli import main; main()",
            "contract",
            "check",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 4, result.stderr
    assert f"{path}: privacy.epsilon_per_session: too small" in result.stderr


def test_the_contract_imports_no_privacy_code_and_its_terms_need_calibrating():
    """cleanroom.contract sits below cleanroom.privacy: importing it loads no privacy code,
    and its bare terms pass no budget check until cleanroom.privacy.calibration calibrates
    them (the ledger amounts are NaN, so a missed calibration refuses instead of overspending)."""
    import subprocess
    import sys

    from cleanroom.contract import budget_allows, parse_terms

    code = (
        "import sys, cleanroom.contract; "
        "print(sorted(m for m in sys.modules if m.startswith('cleanroom.privacy')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
    terms = parse_terms(text().encode())
    assert not budget_allows(terms.ledger_total, 0.0, terms.ledger_per_session)
    calibrated = parse_contract(text().encode())
    assert budget_allows(calibrated.ledger_total, 0.0, calibrated.ledger_per_session)
