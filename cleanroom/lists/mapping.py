"""Which columns of a list hold which match key: shared by both list implementations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cleanroom.contract import Contract
from cleanroom.errors import InputError
from cleanroom.identifiers.kinds import KEY_KINDS, MATCH_KEY_OF


def key_columns(
    available: Sequence[str], mapping: Mapping[str, str], contract: Contract, source: str
) -> dict[str, list[tuple[str, str]]]:
    """For each match key, the (key kind, column) pairs to read, in coalescing order.

    A list may lack a key the contract allows (a publisher without phone numbers): those
    slots stay empty. A list with no column for any of the contract's keys is an error.
    """
    chosen: dict[str, list[tuple[str, str]]] = {}
    for match_key in contract.keys:
        kinds = [kind for kind in KEY_KINDS if MATCH_KEY_OF[kind] == match_key]
        explicit = [(kind, mapping[kind]) for kind in kinds if kind in mapping]
        chosen[match_key] = explicit or [(kind, kind) for kind in kinds if kind in available]
    if not any(chosen.values()):
        expected = ", ".join(
            f"'{kind}'" for kind in KEY_KINDS if MATCH_KEY_OF[kind] in contract.keys
        )
        raise InputError(
            f"{source}: no identifier column: expected one named {expected}, or map one with "
            f"--column {contract.keys[0]}=COLUMN"
        )
    return chosen


def check_mapping(mapping: Mapping[str, str], contract: Contract, extra: Sequence[str]) -> None:
    allowed = set(KEY_KINDS) | set(contract.attributes) | set(extra)
    for name in mapping:
        if name not in allowed:
            raise InputError(
                f"unknown column mapping '{name}': not a key kind ({', '.join(KEY_KINDS)})"
                f" or an attribute of contract '{contract.id}'"
                + (f" ({', '.join(contract.attributes)})" if contract.attributes else "")
            )
