"""Identifiers: the match keys, normalization profiles, SHA-256 digests, input quality.

Each name is imported from its module, so that a caller loads only what it uses:
:mod:`~cleanroom.identifiers.kinds` (the key kinds, match keys and profiles; no Arrow),
:mod:`~cleanroom.identifiers.normalize` (the profiles, documented in
docs/reference/contract.md), :mod:`~cleanroom.identifiers.digests`,
:mod:`~cleanroom.identifiers.quality` (the counting rules) and
:mod:`~cleanroom.identifiers.masking`.
"""
