"""The report both parties receive (docs/reference/report.md): a :class:`Report`, its
canonical bytes (what both sides store, sign and compare byte for byte) and the signatures
kept with it. The brand assembles it in :mod:`cleanroom.report.release`; the partner checks
it against what it knows and stores the identical JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cleanroom.errors import InputError

if TYPE_CHECKING:
    import pandas as pd


def dumps(document: Mapping[str, Any]) -> bytes:
    """The canonical JSON both sides store, sign and compare byte for byte."""
    return json.dumps(document, sort_keys=True, indent=2).encode() + b"\n"


#: Role ("brand", "partner") -> that party's report-signing public key and its signature
#: over the canonical report bytes, both in hex.
Signatures = dict[str, dict[str, str]]


@dataclass(frozen=True)
class Report:
    """A released report: the protocol makes and checks it, the store keeps it, the client
    library returns it. ``document`` is the JSON object both parties signed, kept as
    released so that its canonical bytes never change; ``signatures`` and
    ``input_quality`` travel with it and are not part of it (nor of equality)."""

    document: Mapping[str, Any]
    # This party's own input-quality summary: kept local, never sent (docs/threat-model.md).
    input_quality: Mapping[str, Mapping[str, int]] = field(default_factory=dict, compare=False)
    # Ed25519 signatures of both parties over the canonical bytes (cleanroom.crypto.signing).
    signatures: Signatures = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, data: bytes) -> Report:
        """A released report from its bytes: ValueError if they are not JSON, TypeError if
        not a JSON object."""
        document = json.loads(data)
        if not isinstance(document, dict):
            raise TypeError("a report is a JSON object")
        return cls(document)

    @classmethod
    def load(cls, path: str | Path) -> Report:
        """Read a report file as written by ``cleanroom-client run`` or ``cleanroom report export``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(f"report file not found: {path}") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"report file {path} is not a cleanroom report: {exc}") from None
        required = {"contract_id", "session_id", "overlap", "attributes", "partner_size"}
        if not isinstance(data, dict) or not required <= data.keys():
            raise InputError(f"report file {path} is not a cleanroom report (missing fields)")
        signatures = data.pop("signatures", {})
        return cls(data, signatures=signatures)

    def signed(self, signatures: Signatures) -> Report:
        """The same report carrying ``signatures``."""
        return replace(self, signatures=signatures)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the document, as plain JSON values."""
        copy: dict[str, Any] = json.loads(json.dumps(self.document))
        return copy

    def to_pandas(self) -> pd.DataFrame:
        """One tidy row per (segment, attribute) cell, with the segment's overlap."""
        # Imported here: pandas and the index are for the library's callers; the store and
        # the protocol, which hold reports too, never load them.
        from cleanroom.report.index import report_to_frame

        return report_to_frame(self.document)

    def signed_bytes(self) -> bytes:
        """The canonical bytes: exactly what both parties signed."""
        return dumps(self.document)

    def to_json(self) -> bytes:
        """The report file: the released report with both signatures alongside."""
        return dumps({**self.document, "signatures": self.signatures})

    @property
    def contract_id(self) -> str:
        return str(self.document["contract_id"])

    @property
    def session_id(self) -> str:
        return str(self.document["session_id"])

    @property
    def transcript_sha256(self) -> str:
        return str(self.document["transcript_sha256"])

    @property
    def partner_size(self) -> int:
        return int(self.document["partner_size"])

    @property
    def overlap(self) -> int | None:
        """The total overlap, None when suppressed."""
        total = self.document["overlap"]["total"]
        return None if total is None else int(total)

    def __repr__(self) -> str:
        return f"Report(contract={self.contract_id!r}, session={self.session_id!r}, overlap={self.overlap})"
