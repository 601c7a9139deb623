"""Identifier normalization profiles and SHA-256 digests (docs/reference/contract.md,
normalization profiles).

A *key kind* says what a column holds: a raw ``email``, ``phone`` or ``maid`` (mobile
advertising id), or a pre-hashed ``email_sha256`` / ``phone_sha256``. Each kind maps to
a *match key* (``email``, ``phone``, ``maid``); raw and pre-hashed columns of the same
match key produce the same 32-byte digest for the same person, so they match.

A raw value is normalized by a named, versioned *profile* and then hashed:
``digest = SHA-256(UTF-8(normalized))``. A pre-hashed value (64 hex digits in either
case, or standard / URL-safe Base64 of the 32 bytes, with or without its one ``=``
pad) is decoded and used as given.

Profiles
--------
``pair-1`` (IAB Tech Lab PAIR, "Canonical representation of Common Match keys")
    email
        Trim surrounding whitespace (:data:`TRIM_CHARACTERS`), lowercase ASCII
        letters only (non-ASCII characters are hashed as given; no Unicode
        normalization). Valid when: exactly one ``@``; a local part of 1-64
        characters; a domain of dot-separated non-empty labels with at least one dot;
        no whitespace or control characters anywhere; at most 254 characters.
    phone
        Parsed with ``phonenumbers`` using the contract's ``default_region`` for
        numbers written without ``+``; must be a valid number
        (``phonenumbers.is_valid_number``); formatted E.164 with the leading ``+``.
    maid
        Trimmed, ASCII-lowercased, must be a UUID (8-4-4-4-12 hex digits); the
        all-zero UUID (sent when the user limits ad tracking) is invalid.
``google-1``
    As ``pair-1``; in addition, for ``gmail.com`` and ``googlemail.com`` addresses
    the local part loses its ``+tag`` suffix (everything from the first ``+``) and
    all its dots, and ``googlemail.com`` becomes ``gmail.com``. An address whose
    local part is empty after that is invalid.

Pre-hashed values
    Trimmed like raw values. The SHA-256 of the empty string
    (``e3b0c442...b855``) is rejected as invalid: it is what a pipeline produces when
    it hashes a missing value, and accepting it would let two lists "match" on junk.

Empty values (``None``, ``""`` or only whitespace) mean "no such key" and are neither
valid nor invalid.

Two implementations exist and are kept equal by the property tests: a scalar one
(:func:`normalize`, :func:`digest`) and a vectorised one over Arrow arrays
(:func:`digest_array`) that :func:`cleanroom.identifiers.quality.digest_column` uses.
"""

from __future__ import annotations

import binascii
import hashlib
import importlib
import re
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from cleanroom import _native
from cleanroom.arrow_values import booleans, number_scalar, numpy_mask, numpy_view, string_scalar
from cleanroom.errors import ContractError, InputError
from cleanroom.identifiers.digests import DIGEST_SIZE, KeyDigests
from cleanroom.identifiers.kinds import HASHED_KINDS, KEY_KINDS, PROFILES


def _fastest_sha256() -> Callable[[bytes | memoryview], Any]:
    """CPython's built-in SHA-256 (``_sha2`` from 3.12, ``_sha256`` before): cheaper per
    short input than OpenSSL's ``hashlib.sha256``, whose object set-up dominates
    (docs/performance.md); both compute the same function. Falls back to hashlib."""
    for name in ("_sha2", "_sha256"):
        try:
            constructor: Callable[[bytes | memoryview], Any] = importlib.import_module(name).sha256
        except (ImportError, AttributeError):  # pragma: no cover - depends on the interpreter
            continue
        if constructor(b"").digest() == hashlib.sha256(b"").digest():
            return constructor
    return hashlib.sha256  # pragma: no cover


_sha256 = _fastest_sha256()

__all__ = [
    "EMPTY_SHA256",
    "TRIM_CHARACTERS",
    "check_kind",
    "check_profile",
    "check_region",
    "digest",
    "digest_array",
    "normalize",
    "sha256",
    "to_string_array",
]

#: SHA-256 of the empty string: a hashed "missing value", rejected as a pre-hashed key.
EMPTY_SHA256: bytes = hashlib.sha256(b"").digest()

#: Characters trimmed from both ends of every value: Unicode White_Space, the four ASCII
#: separators Python's ``str.strip()`` also removes, and the zero-width space and
#: byte-order mark that spreadsheets leave behind.
TRIM_CHARACTERS: str = (
    "\t\n\v\f\r \x1c\x1d\x1e\x1f\x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u200b\u2028\u2029\u202f\u205f\u3000\ufeff"
)

# Characters never allowed inside an email: '@' (handled separately), C0/C1 controls,
# space, DEL, and every trimmed character. ASCII ranges are written as \xhh escapes
# (understood by both Python `re` and RE2), the rest as literal characters.
_NON_ASCII_FORBIDDEN = "".join(ch for ch in TRIM_CHARACTERS if ord(ch) > 0x9F)
_EMAIL_FORBIDDEN = r"@\x00-\x20\x7f-\x9f" + _NON_ASCII_FORBIDDEN
_LOCAL = f"[^{_EMAIL_FORBIDDEN}]{{1,64}}"
_LABEL = f"[^.{_EMAIL_FORBIDDEN}]+"
_EMAIL_PATTERN = f"^{_LOCAL}@{_LABEL}(?:\\.{_LABEL})+$"
_EMAIL_RE = re.compile(_EMAIL_PATTERN)
_EMAIL_MAX_LENGTH = 254  # RFC 5321 path limit minus the angle brackets

_MAID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_MAID_RE = re.compile(_MAID_PATTERN)
_MAID_ZERO = "00000000-0000-0000-0000-000000000000"

_HEX_PATTERN = r"^[0-9A-Fa-f]{64}$"
_HEX_RE = re.compile(_HEX_PATTERN)
# 32 bytes = 43 Base64 characters + one '=' pad; standard (+/) or URL-safe (-_).
_B64_PATTERN = r"^[A-Za-z0-9+/_-]{43}=?$"
_B64_RE = re.compile(_B64_PATTERN)
_URLSAFE_TO_STD = str.maketrans("-_", "+/")

_GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
_GMAIL_SPLIT = r"^(?P<local>[^@+]*)(?:\+[^@]*)?@(?P<domain>.*)$"

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_E164 = phonenumbers.PhoneNumberFormat.E164


# --------------------------------------------------------------------------- checks


def check_kind(kind: str) -> str:
    """Return *kind* if it is a known key kind, else raise :class:`InputError`."""
    if kind not in KEY_KINDS:
        raise InputError(
            f"unknown identifier key kind {kind!r}; known kinds: {', '.join(KEY_KINDS)}"
        )
    return kind


def check_profile(profile: str) -> str:
    """Return *profile* if known, else raise :class:`ContractError` (a contract setting)."""
    if profile not in PROFILES:
        raise ContractError(
            f"contract setting normalization = {profile!r} is not a known profile; "
            f"known profiles: {', '.join(PROFILES)}"
        )
    return profile


def check_region(region: str | None) -> str:
    """Return the upper-cased region if ``phonenumbers`` knows it, else raise ContractError."""
    code = (region or "").strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ContractError(
            f"contract setting default_region = {region!r} is not a region code that "
            "phonenumbers knows (use an ISO 3166-1 alpha-2 code such as 'US' or 'GB')"
        )
    return code


# ------------------------------------------------------------------- scalar path


def _ascii_lower(value: str) -> str:
    return value.lower() if value.isascii() else value.translate(_ASCII_LOWER)


def _normalize_email(value: str, profile: str) -> str | None:
    s = _ascii_lower(value)
    if len(s) > _EMAIL_MAX_LENGTH or _EMAIL_RE.fullmatch(s) is None:
        return None
    if profile == "google-1":
        local, domain = s.split("@")
        if domain in _GMAIL_DOMAINS:
            local = local.split("+", 1)[0].replace(".", "")
            if not local:
                return None
            s = local + "@gmail.com"
    return s


def _normalize_phone(value: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    # Validity for the default region is much cheaper to test than the general case
    # (which tries every region sharing the country code) and implies it.
    if not (
        phonenumbers.is_valid_number_for_region(number, region)
        or phonenumbers.is_valid_number(number)
    ):
        return None
    return phonenumbers.format_number(number, _E164)


def _normalize_maid(value: str) -> str | None:
    s = _ascii_lower(value)
    if _MAID_RE.fullmatch(s) is None or s == _MAID_ZERO:
        return None
    return s


def _decode_shaped(value: str) -> bytes | None:
    """Decode a value already known to match the hex or the Base64 pattern."""
    if len(value) == 64:
        raw = bytes.fromhex(value)
    else:
        text = value.translate(_URLSAFE_TO_STD)
        if len(text) == 43:
            text += "="
        try:
            raw = binascii.a2b_base64(text)
        except binascii.Error:  # pragma: no cover - the pattern admits only valid input
            return None
    if len(raw) != 32 or raw == EMPTY_SHA256:
        return None
    return raw


def _decode_prehashed(value: str) -> bytes | None:
    if _HEX_RE.fullmatch(value) or _B64_RE.fullmatch(value):
        return _decode_shaped(value)
    return None


def normalize(kind: str, value: str | None, profile: str, region: str) -> str | None:
    """Normalize one identifier; ``None`` when it is empty or invalid.

    For raw kinds this is the string that gets hashed. For pre-hashed kinds it is the
    lowercase hex of the 32 decoded bytes. ``region`` is used only for phones.
    """
    check_kind(kind)
    check_profile(profile)
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:
            return None
        if value.is_integer():
            value = int(value)
    s = str(value).strip(TRIM_CHARACTERS)
    if not s:
        return None
    if kind == "email":
        return _normalize_email(s, profile)
    if kind == "phone":
        return _normalize_phone(s, check_region(region))
    if kind == "maid":
        return _normalize_maid(s)
    raw = _decode_prehashed(s)
    return None if raw is None else raw.hex()


def sha256(text: str) -> bytes:
    """SHA-256 of the UTF-8 encoding of *text*."""
    out: bytes = _sha256(text.encode("utf-8")).digest()
    return out


def digest(kind: str, value: str | None, profile: str, region: str) -> bytes | None:
    """The 32-byte match digest of one identifier, or ``None`` if empty or invalid."""
    normalized = normalize(kind, value, profile, region)
    if normalized is None:
        return None
    if kind in HASHED_KINDS:
        return bytes.fromhex(normalized)
    return sha256(normalized)


# ------------------------------------------------------------------ vector path


def _scalar_to_text(v: Any, missing: tuple[Any, ...]) -> str | None:
    if v is None or any(v is m for m in missing):
        return None
    if isinstance(v, float):
        if v != v:
            return None
        if v.is_integer():
            return str(int(v))
    return str(v)


def to_string_array(values: Any) -> pa.Array[Any]:
    """Return *values* as an Arrow ``string`` (or ``large_string``) array, nulls kept.

    Accepts a sequence, a NumPy array, a pandas Series, or an Arrow (chunked) array.
    Integers become their decimal digits; floats holding whole numbers (a phone
    column that pandas turned into float64 because of missing values) become the
    digits without ``.0``; other types go through Arrow's cast.
    """
    if isinstance(values, pa.ChunkedArray):
        arr: Any = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    elif isinstance(values, pa.Array):
        arr = values
    else:
        try:
            arr = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            try:
                import pandas as pd

                missing: tuple[Any, ...] = (pd.NA, pd.NaT)
            except ImportError:  # pragma: no cover
                missing = ()
            arr = pa.array([_scalar_to_text(v, missing) for v in values], type=pa.string())
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return cast("pa.Array[Any]", arr)
    if pa.types.is_string_view(t):
        return cast("pa.Array[Any]", arr.cast(pa.string()))
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    if pa.types.is_floating(t):
        finite = pc.drop_null(arr)
        if len(finite) == 0 or pc.all(pc.equal(pc.floor(finite), finite)).as_py():
            try:
                return cast("pa.Array[Any]", arr.cast(pa.int64()).cast(pa.string()))
            except pa.ArrowInvalid:  # out of int64 range
                pass
    return cast("pa.Array[Any]", arr.cast(pa.string()))


def _digests_of(strings: pa.Array[Any]) -> bytes:
    """SHA-256 of every (non-null) UTF-8 string in *strings*, straight from Arrow buffers,
    natively (native/src/sha256.rs): packed, 32 bytes each."""
    n = len(strings)
    if n == 0:
        return b""
    offsets_dtype = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    buffers: list[Any] = strings.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offsets_dtype)[
        strings.offset : strings.offset + n + 1
    ]
    data = buffers[2].to_pybytes() if buffers[2] is not None else b""
    return _native.sha256_spans(data, offsets.astype("<i8").tobytes())


def _email_array(trimmed: pa.Array[Any], profile: str) -> tuple[pa.Array[Any], pa.Array[Any]]:
    lowered: Any = pc.ascii_lower(trimmed)
    valid: Any = pc.and_(
        pc.match_substring_regex(lowered, _EMAIL_PATTERN),
        pc.less_equal(pc.utf8_length(lowered), number_scalar(_EMAIL_MAX_LENGTH, pa.int64())),
    )
    if profile == "google-1":
        is_gmail = pc.and_(
            valid,
            pc.or_(pc.ends_with(lowered, "@gmail.com"), pc.ends_with(lowered, "@googlemail.com")),
        )
        if pc.any(is_gmail).as_py():
            parts: Any = pc.extract_regex(lowered, _GMAIL_SPLIT)
            local: Any = pc.replace_substring(parts.field("local"), ".", "")
            rewritten = pc.binary_join_element_wise(
                local, string_scalar("gmail.com"), string_scalar("@")
            )
            lowered = pc.if_else(is_gmail, rewritten, lowered)
            empty_local = pc.and_(
                is_gmail, pc.equal(pc.utf8_length(local), number_scalar(0, pa.int64()))
            )
            valid = pc.and_(valid, pc.invert(empty_local))
    return lowered, valid


def _phone_array(
    trimmed: pa.Array[Any], present: np.ndarray, region: str
) -> tuple[list[str | None], np.ndarray]:
    """Per-value phonenumbers over the distinct present values (each parsed once)."""
    idx = np.flatnonzero(present)
    out: list[str | None] = [None] * len(trimmed)
    valid = np.zeros(len(trimmed), dtype=bool)
    if len(idx) == 0:
        return out, valid
    encoded: Any = trimmed.filter(booleans(present)).dictionary_encode()
    distinct = [_normalize_phone(s, region) for s in encoded.dictionary.to_pylist()]
    codes = numpy_view(encoded.indices).tolist()
    for i, code in zip(idx.tolist(), codes, strict=True):
        norm = distinct[code]
        if norm is not None:
            out[i] = norm
            valid[i] = True
    return out, valid


def digest_array(
    values: Any, kind: str, profile: str, region: str
) -> tuple[KeyDigests, np.ndarray, np.ndarray, pa.Array[Any]]:
    """Vectorised :func:`digest` over a column.

    Returns ``(digests, empty, invalid, trimmed)``: the packed digests (a row is present
    where its value is valid); a
    boolean mask of empty rows ("no such key"); a boolean mask of invalid rows; and
    the trimmed input strings (for masked error examples). No de-duplication here.
    """
    check_kind(kind)
    check_profile(profile)
    if kind == "phone":
        region = check_region(region)
    arr = to_string_array(values)
    n = len(arr)
    trimmed: Any = pc.utf8_trim(arr, characters=TRIM_CHARACTERS)
    lengths = pc.utf8_length(trimmed)
    empty = numpy_mask(pc.equal(lengths, number_scalar(0, lengths.type)), missing=True)
    present = ~empty
    digests = KeyDigests.missing(n)

    if kind == "phone":
        normalized, valid = _phone_array(trimmed, present, region)
        for i in np.flatnonzero(valid).tolist():
            text = normalized[i]
            if text is not None:
                digests.set(i, sha256(text))
        return digests, empty, present & ~valid, trimmed

    if kind in HASHED_KINDS:
        shaped = numpy_mask(
            pc.or_(
                pc.match_substring_regex(trimmed, _HEX_PATTERN),
                pc.match_substring_regex(trimmed, _B64_PATTERN),
            ),
            missing=False,
        )
        valid = present & shaped
        idx = np.flatnonzero(valid)
        for i, text in zip(idx.tolist(), trimmed.filter(booleans(valid)).to_pylist(), strict=True):
            raw = _decode_shaped(text)
            if raw is None:
                valid[i] = False
            else:
                digests.set(i, raw)
        return digests, empty, present & ~valid, trimmed

    if kind == "email":
        normalized_arr, valid_arr = _email_array(trimmed, profile)
    else:  # maid
        normalized_arr = pc.ascii_lower(trimmed)
        valid_arr = pc.and_(
            pc.match_substring_regex(normalized_arr, _MAID_PATTERN),
            pc.not_equal(normalized_arr, string_scalar(_MAID_ZERO)),
        )
    valid = present & numpy_mask(valid_arr, missing=False)
    idx = np.flatnonzero(valid)
    hashed = _digests_of(normalized_arr.filter(booleans(valid)))
    digests.matrix[idx] = np.frombuffer(hashed, dtype=np.uint8).reshape(-1, DIGEST_SIZE)
    digests.present[idx] = True
    return digests, empty, present & ~valid, trimmed
