"""Property tests for cleanroom.identifiers (hypothesis)."""

from __future__ import annotations

import base64
import hashlib
import uuid
from unittest import mock

import phonenumbers
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cleanroom.identifiers import quality as quality_module
from cleanroom.identifiers.kinds import PROFILES
from cleanroom.identifiers.masking import mask
from cleanroom.identifiers.normalize import TRIM_CHARACTERS, digest, normalize
from cleanroom.identifiers.quality import digest_column

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

profiles = st.sampled_from(PROFILES)
regions = st.sampled_from(["US", "GB", "DE", "FR", "IN", "BR", "AU", "JP"])
padding = st.text(alphabet=TRIM_CHARACTERS, max_size=3)


@st.composite
def messy_emails(draw: st.DrawFn) -> str:
    """Valid-looking emails with random case, padding, dots, +tags and Gmail domains."""
    address = draw(st.emails())
    local, _, domain = address.rpartition("@")
    domain = draw(st.sampled_from([domain, "gmail.com", "googlemail.com", "GMail.com"]))
    if draw(st.booleans()):
        local = local + "+" + draw(st.text(alphabet="abcXYZ.09", max_size=5))
    flips = draw(st.lists(st.booleans(), min_size=len(local), max_size=len(local)))
    local = "".join(c.upper() if f else c for c, f in zip(local, flips, strict=True))
    return draw(padding) + local + "@" + domain + draw(padding)


phones = st.builds(
    lambda plus, digits, seps: (
        ("+" if plus else "") + "".join(d + s for d, s in zip(digits, seps, strict=False))
    ),
    st.booleans(),
    st.text(alphabet="0123456789", min_size=6, max_size=15),
    st.lists(st.sampled_from(["", "", " ", "-", ".", "(", ")"]), min_size=15, max_size=15),
)


@st.composite
def valid_phones(draw: st.DrawFn) -> tuple[str, str]:
    """(text, region): a phonenumbers example number with random trailing digits, written
    national, international or E.164, with the region used to read it."""
    region = draw(regions)
    kind = draw(
        st.sampled_from(
            [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
        )
    )
    example = phonenumbers.example_number_for_type(region, kind)
    assert example is not None
    nsn = str(example.national_number)
    tail = draw(st.text(alphabet="0123456789", min_size=2, max_size=2))
    number = phonenumbers.parse("+" + str(example.country_code) + nsn[:-2] + tail)
    fmt = draw(
        st.sampled_from(
            [
                phonenumbers.PhoneNumberFormat.NATIONAL,
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                phonenumbers.PhoneNumberFormat.E164,
            ]
        )
    )
    return draw(padding) + phonenumbers.format_number(number, fmt), region


maids = st.builds(
    lambda u, up, pad: pad + (str(u).upper() if up else str(u)) + pad,
    st.uuids(),
    st.booleans(),
    padding,
)
any_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="aA.@+ _-\t\u00a0gmailcom", max_size=30),
    messy_emails(),
    phones,
)


# ------------------------------------------------------------------ idempotence


@SETTINGS
@given(value=st.one_of(messy_emails(), any_text), profile=profiles)
def test_email_normalize_idempotent(value: str, profile: str) -> None:
    once = normalize("email", value, profile, "US")
    if once is not None:
        assert normalize("email", once, profile, "US") == once
        assert once == once.strip() and "@" in once


@SETTINGS
@given(
    value=st.one_of(phones, valid_phones().map(lambda t: t[0])), region=regions, profile=profiles
)
def test_phone_normalize_idempotent(value: str, region: str, profile: str) -> None:
    once = normalize("phone", value, profile, region)
    if once is not None:
        assert once.startswith("+") and once[1:].isdigit()
        assert normalize("phone", once, profile, region) == once
        # E.164 is region-independent
        assert normalize("phone", once, profile, "JP") == once


@SETTINGS
@given(value=st.one_of(maids, st.text(max_size=40)), profile=profiles)
def test_maid_normalize_idempotent(value: str, profile: str) -> None:
    once = normalize("maid", value, profile, "US")
    if once is not None:
        assert normalize("maid", once, profile, "US") == once
        assert str(uuid.UUID(once)) == once


@SETTINGS
@given(value=maids)
def test_every_nonzero_uuid_is_a_valid_maid(value: str) -> None:
    assume(uuid.UUID(value.strip(TRIM_CHARACTERS)).int != 0)
    assert normalize("maid", value, "pair-1", "US") == value.strip(TRIM_CHARACTERS).lower()


# ------------------------------------------------------------- raw == pre-hashed


@SETTINGS
@given(value=messy_emails(), profile=profiles)
def test_email_digest_equals_digest_of_its_sha256(value: str, profile: str) -> None:
    normalized = normalize("email", value, profile, "US")
    assume(normalized is not None)
    assert normalized is not None
    d = digest("email", value, profile, "US")
    assert d == hashlib.sha256(normalized.encode("utf-8")).digest()
    hex_digest = hashlib.sha256(normalized.encode("utf-8")).hexdigest()
    for form in (
        hex_digest,
        hex_digest.upper(),
        base64.b64encode(d).decode(),
        base64.urlsafe_b64encode(d).decode().rstrip("="),
    ):
        assert digest("email_sha256", form, profile, "US") == d


@SETTINGS
@given(phone=valid_phones())
def test_phone_digest_equals_digest_of_its_sha256(phone: tuple[str, str]) -> None:
    value, region = phone
    normalized = normalize("phone", value, "pair-1", region)
    assume(normalized is not None)
    assert normalized is not None
    hex_digest = hashlib.sha256(normalized.encode()).hexdigest()
    assert digest("phone_sha256", hex_digest, "pair-1", region) == digest(
        "phone", value, "pair-1", region
    )


# ---------------------------------------------------- vectorised == scalar path


@SETTINGS
@given(values=st.lists(any_text | st.none(), max_size=12), profile=profiles)
def test_digest_column_equals_scalar_digest_email(values: list, profile: str) -> None:
    _check_column_equals_scalar(values, "email", profile, "US")


@SETTINGS
@given(values=st.lists(st.one_of(maids, st.text(max_size=40), st.none()), max_size=8))
def test_digest_column_equals_scalar_digest_maid(values: list) -> None:
    _check_column_equals_scalar(values, "maid", "pair-1", "US")


@SETTINGS
@given(
    values=st.lists(
        st.one_of(phones, valid_phones().map(lambda t: t[0]), st.text(max_size=15), st.none()),
        max_size=8,
    ),
    region=regions,
)
def test_digest_column_equals_scalar_digest_phone(values: list, region: str) -> None:
    _check_column_equals_scalar(values, "phone", "pair-1", region)


@SETTINGS
@given(
    values=st.lists(
        st.one_of(
            st.binary(min_size=32, max_size=32).map(lambda b: b.hex()),
            st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode()),
            st.text(alphabet="0123456789abcdefABCDEF+/=_-", min_size=40, max_size=66),
            st.none(),
        ),
        max_size=8,
    )
)
def test_digest_column_equals_scalar_digest_prehashed(values: list) -> None:
    _check_column_equals_scalar(values, "email_sha256", "pair-1", "US")


@SETTINGS
@given(
    values=st.lists(st.one_of(messy_emails(), any_text, st.none()), max_size=20),
    slice_rows=st.integers(1, 7),
)
def test_a_column_digested_in_slices_is_the_column_digested_whole(
    values: list, slice_rows: int
) -> None:
    """digest_column works a slice at a time (memory): the digests, the counts and the
    first three invalid examples do not depend on where the slices fall."""
    whole_digests, whole_quality = digest_column(values, "email", "pair-1", "US")
    with mock.patch.object(quality_module, "SLICE_ROWS", slice_rows):
        sliced_digests, sliced_quality = digest_column(values, "email", "pair-1", "US")
    assert sliced_digests == whole_digests
    assert sliced_quality == whole_quality


def _check_column_equals_scalar(values: list, kind: str, profile: str, region: str) -> None:
    digests, quality = digest_column(values, kind, profile, region)
    got = digests.as_list()
    expected: list[bytes | None] = []
    seen: set[bytes] = set()
    for v in values:
        d = digest(kind, v, profile, region)
        if d is not None and d in seen:
            expected.append(None)
        else:
            if d is not None:
                seen.add(d)
            expected.append(d)
    assert got == expected
    assert quality.rows == len(values)
    assert quality.valid - quality.duplicates == len(seen)
    assert len(quality.rejected_examples) == min(3, quality.invalid)


# ------------------------------------------------------------------------ masking


@SETTINGS
@given(value=st.one_of(st.text(min_size=1, max_size=80), messy_emails(), phones))
def test_mask_never_contains_the_value(value: str) -> None:
    assume("*" not in value and "?" not in value)
    masked = mask(value)
    assert value not in masked
    assert "\n" not in masked and "\x00" not in masked
