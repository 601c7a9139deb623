"""Shared fixtures: contracts, synthetic lists, certificates and state stores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cleanroom.brand.demo import contract_text
from cleanroom.contract import Contract
from cleanroom.identity import init_certificate
from cleanroom.privacy.calibration import parse_contract
from cleanroom.store.state import StateStore

BRAND_FP = "a" * 64
PARTNER_FP = "b" * 64


@pytest.fixture
def make_contract() -> Callable[..., Contract]:
    """A contract built from the demo template; keyword arguments override its fields."""

    def build(**overrides: object) -> Contract:
        brand_fp = str(overrides.pop("brand_fingerprint", BRAND_FP))
        partner_fp = str(overrides.pop("partner_fingerprint", PARTNER_FP))
        return parse_contract(contract_text(brand_fp, partner_fp, **overrides).encode())  # type: ignore[arg-type]

    return build


@pytest.fixture
def stores(tmp_path: Path) -> tuple[StateStore, StateStore]:
    return StateStore(tmp_path / "brand.db"), StateStore(tmp_path / "partner.db")


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, str]]:
    """Pinned identities: the brand, the partner, and an intruder no contract names."""
    directory = tmp_path_factory.mktemp("certs")
    return {name: init_certificate(directory, name) for name in ("acme", "newsco", "intruder")}
