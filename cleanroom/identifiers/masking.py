"""Masking of identifiers for messages and logs: never the full value.

``mask("john.doe@example.com") == "jo***@ex***.com"`` and
``mask("+12015550167") == "+1******67"``. At most two leading characters of each email
part (and never more than half of it), the top-level domain when it is short and
alphabetic, or at most two characters at each end of anything else (and never more
than two fifths of it) are shown. The number of hidden characters is not revealed.
Characters that are not printable are shown as ``?`` so a message stays on one line.
"""

from __future__ import annotations

import re

__all__ = ["mask", "mask_in_text"]

_STARS = "***"
_MIDDLE = "******"


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _head(part: str) -> str:
    keep = min(2, len(part) // 2)
    return _printable(part[:keep]) + _STARS


def _mask_email(value: str) -> str:
    local, _, domain = value.rpartition("@")
    name, dot, tld = domain.rpartition(".")
    if dot and name and tld.isascii() and tld.isalpha() and len(tld) <= 6:
        masked_domain = _head(name) + "." + tld
    else:
        masked_domain = _head(domain)
    return _head(local) + "@" + masked_domain


def mask(value: object) -> str:
    """Mask an identifier (or any user value) for an error message.

    The result never contains the full value: an email keeps at most two leading
    characters of its local part and domain name (``jo***@ex***.com``); anything else
    keeps at most two characters at each end (``+1******67``), fewer when it is short.
    """
    if value is None:
        return "<null>"
    text = str(value)
    if not text:
        return "<empty>"
    if "@" in text:
        return _mask_email(text)
    n = len(text)
    keep = min(2, n // 5)
    if keep == 0:
        return _STARS
    return _printable(text[:keep]) + _MIDDLE + _printable(text[n - keep :])


# Tokens that may be identifiers inside free text (a parser's error message, say):
# anything with an '@', a run of 6+ digits (phones), or 20+ hex/Base64 characters.
_SUSPECT = re.compile(
    r"[^\s,;:'\"<>()\[\]]*@[^\s,;:'\"<>()\[\]]*"
    r"|\+?\d[\d ().-]{4,}\d"
    r"|[A-Za-z0-9+/=_-]{20,}"
)


def mask_in_text(text: str) -> str:
    """Mask every identifier-looking token in *text* (defence in depth for messages)."""
    return _SUSPECT.sub(lambda m: mask(m.group(0)), text)
