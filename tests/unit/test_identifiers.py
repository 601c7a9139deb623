"""Unit tests for cleanroom.identifiers: profiles, digests, quality counts, masking."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pytest

from cleanroom.errors import ContractError, InputError
from cleanroom.identifiers.kinds import (
    HASHED_KINDS,
    KEY_KINDS,
    MATCH_KEY_OF,
    MATCH_KEYS,
    PROFILES,
    RAW_KINDS,
)
from cleanroom.identifiers.masking import mask, mask_in_text
from cleanroom.identifiers.normalize import EMPTY_SHA256, digest, normalize
from cleanroom.identifiers.quality import KeyQuality, check_invalid_fraction, digest_column

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "normalization.json"
VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


def sha(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def prehashed_forms(d: bytes) -> list[str]:
    """Every accepted spelling of a pre-hashed digest."""
    std = base64.b64encode(d).decode()
    url = base64.urlsafe_b64encode(d).decode()
    return [d.hex(), d.hex().upper(), std, url, std.rstrip("="), url.rstrip("="), f"  {d.hex()}\t"]


# ---------------------------------------------------------------------- constants


def test_kinds_and_match_keys() -> None:
    assert KEY_KINDS == ("email", "phone", "maid", "email_sha256", "phone_sha256")
    assert set(RAW_KINDS) | set(HASHED_KINDS) == set(KEY_KINDS)
    assert MATCH_KEYS == ("email", "phone", "maid")
    assert PROFILES == ("pair-1", "google-1")
    assert MATCH_KEY_OF == {
        "email": "email",
        "email_sha256": "email",
        "phone": "phone",
        "phone_sha256": "phone",
        "maid": "maid",
    }


def test_unknown_kind_profile_region() -> None:
    with pytest.raises(InputError, match="unknown identifier key kind 'emial'"):
        digest("emial", "a@b.com", "pair-1", "US")
    with pytest.raises(ContractError, match=r"normalization = 'pair-9'.*pair-1, google-1"):
        normalize("email", "a@b.com", "pair-9", "US")
    with pytest.raises(ContractError, match="default_region = 'XX'"):
        digest("phone", "2015550123", "pair-1", "XX")
    with pytest.raises(ContractError, match="default_region"):
        digest_column(["2015550123"], "phone", "pair-1", "")
    # the region matters only for phones, and its case does not
    assert normalize("email", "a@b.com", "pair-1", "") == "a@b.com"
    assert normalize("phone", "(201) 555-0123", "pair-1", "us") == "+12015550123"


# ------------------------------------------------------------------------ vectors


@pytest.mark.parametrize(
    "vector", VECTORS["vectors"], ids=lambda v: f"{v['profile']}:{v['kind']}:{v['input']!r}"
)
def test_vectors(vector: dict) -> None:
    kind, profile, region = vector["kind"], vector["profile"], vector["region"]
    assert normalize(kind, vector["input"], profile, region) == vector["normalized"]
    d = digest(kind, vector["input"], profile, region)
    assert d is not None
    assert d.hex() == vector["sha256_hex"]
    assert base64.b64encode(d).decode() == vector["sha256_base64"]
    assert d == sha(vector["normalized"])
    # the published Base64 / hex, given as pre-hashed input, gives the same digest
    hashed_kind = f"{MATCH_KEY_OF[kind]}_sha256"
    if hashed_kind in HASHED_KINDS:
        for form in (vector["sha256_base64"], vector["sha256_hex"], vector["sha256_hex"].upper()):
            assert digest(hashed_kind, form, profile, region) == d
    # and the vectorised path agrees
    digests, quality = column_digests([vector["input"]], kind, profile, region)
    assert digests == [d]
    assert quality.to_dict() == {"rows": 1, "valid": 1, "invalid": 0, "duplicates": 0}


@pytest.mark.parametrize(
    "vector", VECTORS["invalid"], ids=lambda v: f"{v['profile']}:{v['kind']}:{v['reason']}"
)
def test_invalid_vectors(vector: dict) -> None:
    kind, profile, region = vector["kind"], vector["profile"], vector["region"]
    assert normalize(kind, vector["input"], profile, region) is None
    assert digest(kind, vector["input"], profile, region) is None
    digests, quality = column_digests([vector["input"]], kind, profile, region)
    assert digests == [None]
    assert (quality.valid, quality.invalid) == (0, 1)


def test_published_vectors_are_present_and_cited() -> None:
    published = [v for v in VECTORS["vectors"] if "computed" not in v["source"]]
    hashes = {v["sha256_hex"] for v in published}
    # PAIR Table 1 email example and UID2's phone example
    assert "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514" in hashes
    assert "10e6f0b47054a83359477dcb35231db6de5c69fb1816e1a6b98e192de9e5b9ee" in hashes
    for v in VECTORS["vectors"] + VECTORS["invalid"]:
        assert v["source"], v
        assert all(s in VECTORS["sources"] for s in v["source"]), v


def test_pair_phone_example_discrepancy_is_real() -> None:
    # PAIR Table 1's phone hash is not SHA-256("+12345678901") although it was once
    # published as such; the vectors file records this instead of using it.
    (entry,) = [d for d in VECTORS["known_discrepancies"] if "sha256_hex" in d]
    assert sha(entry["claimed_plaintext"]).hex() != entry["sha256_hex"]
    assert digest("phone", "1 (234) 567-8901", "pair-1", "US") == sha("+12345678901")


# -------------------------------------------------------------------------- email


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("User@Example.COM", "user@example.com"),
        ("  user@example.com\t\n", "user@example.com"),
        ("\ufeffuser@example.com\u00a0", "user@example.com"),  # BOM, no-break space
        ("\u200buser@example.com\u3000", "user@example.com"),  # zero-width, ideographic space
        ("First.Last+Tag@Sub.Example.Co.UK", "first.last+tag@sub.example.co.uk"),
        ("ÉMILE@Example.com", "Émile@example.com"),  # ASCII-lowercase only
        ("o'brien@example.com", "o'brien@example.com"),
        ("a@b.co", "a@b.co"),
    ],
)
def test_email_normalization(profile: str, raw: str, expected: str) -> None:
    assert normalize("email", raw, profile, "US") == expected
    assert digest("email", raw, profile, "US") == sha(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "plainaddress",
        "@example.com",
        "user@",
        "user@example",
        "user@@example.com",
        "us@er@example.com",
        "user@.example.com",
        "user@example.com.",
        "user@example..com",
        "us er@example.com",
        "user@exa mple.com",
        "user\x00@example.com",
        "user\x7f@example.com",
        "user\x85@example.com",
        "user@example.com\u2028x",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_email_invalid(raw: str) -> None:
    for profile in PROFILES:
        assert normalize("email", raw, profile, "US") is None


def test_email_length_limits() -> None:
    local64 = "a" * 64 + "@example.com"
    assert normalize("email", local64, "pair-1", "US") == local64
    at254 = "a@" + "b" * 248 + ".com"
    assert len(at254) == 254
    assert normalize("email", at254, "pair-1", "US") == at254
    assert normalize("email", at254[:-4] + "x.com", "pair-1", "US") is None  # 255


@pytest.mark.parametrize(
    ("raw", "google", "pair"),
    [
        ("Jane.Doe+news@Gmail.com", "janedoe@gmail.com", "jane.doe+news@gmail.com"),
        ("j.a.n.e@googlemail.com", "jane@gmail.com", "j.a.n.e@googlemail.com"),
        ("jane+a+b@gmail.com", "jane@gmail.com", "jane+a+b@gmail.com"),
        ("jane.doe+news@example.com", "jane.doe+news@example.com", "jane.doe+news@example.com"),
        ("jane.doe@gmail.com.example.com", "jane.doe@gmail.com.example.com", None),
        ("jane.doe@mail.gmail.com", "jane.doe@mail.gmail.com", None),
        ("jane.doe@notgmail.com", "jane.doe@notgmail.com", None),
        ("+news@gmail.com", None, "+news@gmail.com"),
        ("..@gmail.com", None, "..@gmail.com"),
    ],
)
def test_google_profile(raw: str, google: str | None, pair: str | None) -> None:
    assert normalize("email", raw, "google-1", "US") == google
    assert normalize("email", raw, "pair-1", "US") == (pair if pair is not None else raw.lower())


def test_google_profile_matches_gmail_and_googlemail() -> None:
    a = digest("email", "Jane.Doe@googlemail.com", "google-1", "US")
    b = digest("email", "janedoe+x@gmail.com", "google-1", "US")
    assert a == b == sha("janedoe@gmail.com")
    assert digest("email", "Jane.Doe@googlemail.com", "pair-1", "US") != b


# -------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(201) 555-0123", "US", "+12015550123"),
        ("201-555-0123", "US", "+12015550123"),
        ("201.555.0123", "US", "+12015550123"),
        ("1 201 555 0123", "US", "+12015550123"),
        ("+1 (201) 555-0123", "GB", "+12015550123"),  # '+' overrides the region
        ("  +12015550123  ", "US", "+12015550123"),
        ("001 201 555 0123", "GB", "+12015550123"),  # international prefix from GB
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 (0)20 7946 0958", "US", "+442079460958"),
        ("07911 123456", "GB", "+447911123456"),
        ("030 123456", "DE", "+4930123456"),
        ("(02) 1234 5678", "AU", "+61212345678"),
    ],
)
def test_phone_normalization(raw: str, region: str, expected: str) -> None:
    for profile in PROFILES:
        assert normalize("phone", raw, profile, region) == expected
        assert digest("phone", raw, profile, region) == sha(expected)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("123", "US"),
        ("555-0123", "US"),
        ("+1 000 000 0000", "US"),
        ("020 7946 0958", "US"),  # a UK number without '+' read as a US number
        ("phone", "US"),
        ("+", "US"),
        ("+999 123 456 789", "US"),
        ("1" * 300, "US"),
    ],
)
def test_phone_invalid(raw: str, region: str) -> None:
    assert normalize("phone", raw, "pair-1", region) is None


def test_phone_from_numbers() -> None:
    assert normalize("phone", 2015550123, "pair-1", "US") == "+12015550123"  # type: ignore[arg-type]
    assert normalize("phone", 12015550123.0, "pair-1", "US") == "+12015550123"  # type: ignore[arg-type]
    assert normalize("phone", float("nan"), "pair-1", "US") is None  # type: ignore[arg-type]


def test_phone_default_region_shortcut_agrees_with_is_valid_number() -> None:
    # normalize() first tries is_valid_number_for_region(default) as a shortcut; it
    # must accept exactly what is_valid_number accepts.
    rng = np.random.default_rng(7)
    for region in ("US", "GB", "DE", "FR", "IN", "BR", "CA"):
        for _ in range(300):
            digits = "".join(str(d) for d in rng.integers(0, 10, size=int(rng.integers(6, 13))))
            try:
                number = phonenumbers.parse(digits, region)
            except phonenumbers.NumberParseException:
                assert normalize("phone", digits, "pair-1", region) is None
                continue
            expected = (
                phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                if phonenumbers.is_valid_number(number)
                else None
            )
            assert normalize("phone", digits, "pair-1", region) == expected, (digits, region)


# --------------------------------------------------------------------------- maid


def test_maid() -> None:
    upper = "  6D92078A-8246-4BA4-AE5B-76104861E7DC\n"
    assert normalize("maid", upper, "pair-1", "US") == "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert digest("maid", upper, "google-1", "US") == sha("6d92078a-8246-4ba4-ae5b-76104861e7dc")
    for bad in (
        "00000000-0000-0000-0000-000000000000",
        "6d92078a82464ba4ae5b76104861e7dc",
        "{6d92078a-8246-4ba4-ae5b-76104861e7dc}",
        "6d92078a-8246-4ba4-ae5b-76104861e7d",
        "6d92078a-8246-4ba4-ae5b-76104861e7dz",
        "not-a-maid",
    ):
        assert normalize("maid", bad, "pair-1", "US") is None, bad


# --------------------------------------------------------------------- pre-hashed


@pytest.mark.parametrize("kind", ["email", "phone"])
def test_prehashed_equals_raw(kind: str) -> None:
    raw = "Jane.Doe@Example.com" if kind == "email" else "(201) 555-0123"
    d = digest(kind, raw, "pair-1", "US")
    assert d is not None and len(d) == 32
    for form in prehashed_forms(d):
        assert digest(f"{kind}_sha256", form, "pair-1", "US") == d, form
        assert normalize(f"{kind}_sha256", form, "pair-1", "US") == d.hex()
    column, quality = column_digests(prehashed_forms(d), f"{kind}_sha256", "pair-1", "US")
    assert column[0] == d and column[1:] == [None] * 6
    assert (quality.valid, quality.duplicates, quality.invalid) == (7, 6, 0)


@pytest.mark.parametrize(
    "bad",
    [
        "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e47551",  # 63
        "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e4755140",  # 65
        "g4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514",
        "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ==",
        "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVR",
        "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5H!RQ=",
        "user@example.com",
        EMPTY_SHA256.hex(),
        base64.b64encode(EMPTY_SHA256).decode(),
    ],
)
def test_prehashed_invalid(bad: str) -> None:
    assert digest("email_sha256", bad, "pair-1", "US") is None
    assert digest("phone_sha256", bad, "pair-1", "US") is None


# -------------------------------------------------------------------------- empty


@pytest.mark.parametrize("kind", KEY_KINDS)
@pytest.mark.parametrize("value", [None, "", "   ", "\t\n", "\u00a0"])
def test_empty_is_none(kind: str, value: str | None) -> None:
    assert normalize(kind, value, "pair-1", "US") is None
    assert digest(kind, value, "pair-1", "US") is None


# ----------------------------------------------------------------- digest_column


def column_digests(*args, **kwargs):
    """digest_column with the digests as one digest or None per row."""
    digests, quality = digest_column(*args, **kwargs)
    return digests.as_list(), quality


def test_digest_column_counts_and_duplicates() -> None:
    values = [
        "jane@example.com",  # valid
        None,  # empty
        "JANE@example.com ",  # duplicate of row 0
        "not-an-email",  # invalid
        "",  # empty
        "bob@example.com",  # valid
        "  ",  # empty
        "also bad@example.com",  # invalid
        "jane@example.com",  # duplicate
        "third@bad",  # invalid
        "fourth@@bad.com",  # invalid (not kept as an example: 3 max)
    ]
    digests, q = column_digests(values, "email", "pair-1", "US")
    assert len(digests) == len(values)
    assert digests[0] == sha("jane@example.com")
    assert digests[5] == sha("bob@example.com")
    assert [i for i, d in enumerate(digests) if d is not None] == [0, 5]
    assert q.to_dict() == {"rows": 11, "valid": 4, "invalid": 4, "duplicates": 2}
    assert (q.empty, q.unique) == (3, 2)
    assert q.invalid_fraction == pytest.approx(4 / 8)
    assert len(q.rejected_examples) == 3
    assert q.rejected_examples == ["no******il", "al***@ex***.com", "th***@b***"]
    for example in q.rejected_examples:
        for raw in values:
            if raw and raw.strip():
                assert raw.strip() not in example


def test_key_quality_to_dict() -> None:
    q = KeyQuality(rows=5, valid=3, invalid=1, duplicates=1, rejected_examples=["x***"])
    assert q.to_dict() == {"rows": 5, "valid": 3, "invalid": 1, "duplicates": 1}
    assert KeyQuality().invalid_fraction == 0.0


def test_digest_column_phone() -> None:
    values = ["(201) 555-0123", "+1 201 555 0123", "2015550124", "12", None, "(201) 555-0123"]
    digests, q = column_digests(values, "phone", "pair-1", "US")
    assert digests == [sha("+12015550123"), None, sha("+12015550124"), None, None, None]
    assert q.to_dict() == {"rows": 6, "valid": 4, "invalid": 1, "duplicates": 2}
    assert q.rejected_examples == ["***"]


def test_digest_column_input_types() -> None:
    emails = ["a@example.com", None, "b@example.com"]
    expected = [sha("a@example.com"), None, sha("b@example.com")]
    inputs = [
        emails,
        tuple(emails),
        pa.array(emails),
        pa.array(emails, pa.large_string()),
        pa.chunked_array([pa.array(emails[:1]), pa.array(emails[1:])]),
        pa.array(emails).dictionary_encode(),
        pd.Series(emails),
        pd.Series(["a@example.com", np.nan, "b@example.com"], dtype=object),
        pd.Series(emails, dtype="string"),
        np.array(emails, dtype=object),
    ]
    for values in inputs:
        digests, q = column_digests(values, "email", "pair-1", "US")
        assert digests == expected, type(values)
        assert (q.rows, q.valid) == (3, 2)
    # a sliced Arrow array (non-zero offset) must hash the right bytes
    sliced = pa.array(["x@example.com", *emails]).slice(1)
    assert column_digests(sliced, "email", "pair-1", "US")[0] == expected
    # numeric phone columns (Parquet int64, pandas float64 with NaN)
    phones_expected = [sha("+12015550123"), None]
    for values in (
        pa.array([2015550123, None], pa.int64()),
        pd.Series([2015550123.0, np.nan]),
        [2015550123, None],
    ):
        assert column_digests(values, "phone", "pair-1", "US")[0] == phones_expected


def test_digest_column_matches_scalar() -> None:
    values = [
        " A@b.co ",
        "x",
        "y@gmail.com",
        "Y.y+1@googlemail.com",
        "\u00a0\u2003q@q.qq",
        "a b@c.de",
        "é@x.fr",
        "+@gmail.com",
        None,
    ]
    for profile in PROFILES:
        for kind in ("email", "maid", "email_sha256"):
            got, _ = column_digests(values, kind, profile, "US")
            assert got == [digest(kind, v, profile, "US") for v in values]


def test_digest_column_empty_input() -> None:
    digests, q = column_digests([], "phone", "pair-1", "US")
    assert digests == []
    assert q.to_dict() == {"rows": 0, "valid": 0, "invalid": 0, "duplicates": 0}
    digests, q = column_digests([None, ""], "email", "pair-1", "US")
    assert digests == [None, None]
    assert (q.rows, q.valid, q.invalid, q.empty) == (2, 0, 0, 2)


# ------------------------------------------------------------ invalid fraction


def _quality(values: list[str | None], kind: str = "email") -> KeyQuality:
    return digest_column(values, kind, "pair-1", "US")[1]


def test_check_invalid_fraction_passes_at_or_below_limit() -> None:
    q = _quality(["a@example.com", "b@example.com", "c@example.com", "bad", None, None])
    check_invalid_fraction({"email": q}, 0.25, "crm.csv", {"email": "EMAIL"})  # 1/4
    check_invalid_fraction({"email": _quality([None, ""])}, 0.0, "crm.csv", {})


def test_check_invalid_fraction_raises() -> None:
    values = ["john.smith@example.com", "john smith@example.com", "+12015550123", "x@y.com"]
    email_q = _quality(values)
    phone_q = _quality(["(201) 555-0123", "12345", "99999"], "phone")
    with pytest.raises(InputError) as err:
        check_invalid_fraction(
            {"email": email_q, "phone": phone_q}, 0.2, "crm.csv", {"email": "EMAIL", "phone": "tel"}
        )
    msg = str(err.value)
    assert msg.startswith("crm.csv: ")
    assert "column 'EMAIL' (email): 2 of 4 non-empty values are invalid (50.0%)" in msg
    assert "column 'tel' (phone): 2 of 3" in msg
    assert "max_invalid_fraction = 0.2" in msg
    assert "jo***@ex***.com" in msg and "+1******23" in msg
    for raw in values[:3]:
        assert raw not in msg
    assert err.value.exit_code == 3


def test_check_invalid_fraction_bad_limit() -> None:
    for bad in (-0.1, 1.5, "x", None, True):
        with pytest.raises(ContractError, match="max_invalid_fraction"):
            check_invalid_fraction({}, bad, "crm.csv", {})  # type: ignore[arg-type]


# ----------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("john.doe@example.com", "jo***@ex***.com"),
        ("+12015550167", "+1******67"),
        ("ab@c.d", "a***@***.d"),
        ("a", "***"),
        ("1234", "***"),
        ("12345", "1******5"),
        ("x@mail.example.co.uk", "***@ma***.uk"),
        ("b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514", "b4******14"),
        ("line\nbreak\x00here", "li******re"),
        ("\n\n\nabc\n\n", "?******?"),
        (None, "<null>"),
        ("", "<empty>"),
    ],
)
def test_mask(value: str | None, masked: str) -> None:
    assert mask(value) == masked


@pytest.mark.parametrize(
    "value",
    [
        "john.doe@example.com",
        "jo@ex.com",
        "a@b.c",
        "+12015550167",
        "2015550167",
        "6d92078a-8246-4ba4-ae5b-76104861e7dc",
        "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ=",
        "abcde",
        "ab",
    ],
)
def test_mask_never_reveals_full_value(value: str) -> None:
    masked = mask(value)
    assert value not in masked
    assert "*" in masked


def test_mask_in_text() -> None:
    text = "bad value john.doe@example.com and +1 201 555 0167 in row 3"
    out = mask_in_text(text)
    assert "john.doe@example.com" not in out and "201 555 0167" not in out
    assert "row 3" in out and "jo***@ex***.com" in out
