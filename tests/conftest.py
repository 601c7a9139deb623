"""Shared fixtures (contracts, certificates, state stores) and how the suite is run: on
tmpfs, spread over the xdist workers with the longest tests first."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cleanroom.contract import Contract, parse_contract
from cleanroom.demo import contract_text
from cleanroom.identity import init_certificate
from cleanroom.store.state import StateStore

BRAND_FP = "a" * 64
PARTNER_FP = "b" * 64

# Modules whose tests share nothing but session fixtures: xdist may run them on different
# workers. Every other module runs whole on one worker (one xdist group per module), so its
# module-scoped fixtures (a server, the Spark cluster) start once and its tests keep their order.
SPREAD = {
    "integration/test_faults.py",
    "integration/test_storage_faults.py",
    "integration/test_matching_privacy.py",
    "integration/test_operations.py",
    "integration/test_report_signatures.py",
    "integration/test_connection_errors.py",
    "integration/test_plaintext_crosscheck.py",
}
# The longest modules, longest first (seconds of a quiet 2-core machine in the README): they
# start first, so that no worker begins one while the others are nearly done.
FIRST = (
    "integration/test_spark_engine.py",
    "integration/test_spark_cli.py",
    "integration/test_matching_privacy.py",
    "integration/test_faults.py",
    "integration/test_tutorial.py",
    "integration/test_cli.py",
    "integration/test_storage_faults.py",
    "integration/test_interrupt.py",
    "integration/test_operations.py",
    "integration/test_plaintext_crosscheck.py",
    "integration/test_report_signatures.py",
)
TMPFS = Path("/dev/shm")  # noqa: S108 - only as mkdtemp's parent: a private new directory


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Temporary directories on tmpfs unless --basetemp says otherwise: the state databases
    commit with ``synchronous=FULL``, and an fsync per commit on a disk (a busy one above
    all) made sessions wait far longer than they compute. Runs in the controller before
    pytest makes its temporary directory factory; xdist gives each worker a subdirectory."""
    if config.option.basetemp or hasattr(config, "workerinput") or not TMPFS.is_dir():
        return
    config.option.basetemp = tempfile.mkdtemp(prefix="cleanroom-tests-", dir=TMPFS)
    config.add_cleanup(lambda: shutil.rmtree(config.option.basetemp, ignore_errors=True))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first, and an xdist group for each module not in SPREAD (before
    xdist reads the groups under ``--dist loadgroup``)."""
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(module_of(item), len(FIRST)))
    for item in items:
        if module_of(item) not in SPREAD:
            item.add_marker(pytest.mark.xdist_group(module_of(item)))


def module_of(item: pytest.Item) -> str:
    """The item's module as a path under tests/, e.g. ``integration/test_cli.py``."""
    return item.path.relative_to(Path(__file__).parent).as_posix()


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
