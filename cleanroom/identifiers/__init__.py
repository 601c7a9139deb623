"""Identifiers: the match keys, normalization profiles, SHA-256 digests, input quality.

The one home of ``MATCH_KEYS`` and ``PROFILES``; the profiles are documented in
docs/reference/contract.md (normalization profiles).

See :mod:`cleanroom.identifiers.normalize` for the profiles and
:mod:`cleanroom.identifiers.quality` for the counting rules.
"""

from __future__ import annotations

from cleanroom.identifiers.digests import DIGEST_SIZE, KeyDigests, drop_repeats
from cleanroom.identifiers.masking import mask, mask_in_text
from cleanroom.identifiers.normalize import (
    EMPTY_SHA256,
    HASHED_KINDS,
    KEY_KINDS,
    MATCH_KEY_OF,
    MATCH_KEYS,
    PROFILES,
    RAW_KINDS,
    TRIM_CHARACTERS,
    check_kind,
    check_profile,
    check_region,
    digest,
    digest_array,
    normalize,
    sha256,
    to_string_array,
)
from cleanroom.identifiers.quality import (
    MAX_EXAMPLES,
    KeyQuality,
    check_invalid_fraction,
    digest_column,
)

__all__ = [
    "DIGEST_SIZE",
    "EMPTY_SHA256",
    "HASHED_KINDS",
    "KEY_KINDS",
    "MATCH_KEYS",
    "MATCH_KEY_OF",
    "MAX_EXAMPLES",
    "PROFILES",
    "RAW_KINDS",
    "TRIM_CHARACTERS",
    "KeyDigests",
    "KeyQuality",
    "check_invalid_fraction",
    "check_kind",
    "check_profile",
    "check_region",
    "digest",
    "digest_array",
    "digest_column",
    "drop_repeats",
    "mask",
    "mask_in_text",
    "normalize",
    "sha256",
    "to_string_array",
]
