"""Shared fixtures (contracts, certificates, state stores) and how the suite is run: on
tmpfs, spread over the xdist workers with the longest tests first."""

from __future__ import annotations

import compileall
import gc
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from xdist.remote import Producer  # type: ignore[import-untyped]
from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

from cleanroom.brand.demo import contract_text
from cleanroom.contract import Contract
from cleanroom.identity import init_certificate
from cleanroom.privacy.calibration import parse_contract
from cleanroom.store.state import StateStore

BRAND_FP = "a" * 64
PARTNER_FP = "b" * 64

# Modules whose tests share nothing but session fixtures: xdist may run their tests on
# different workers. Every other module runs whole on one worker, so that its module-scoped
# fixtures (a server, the Spark cluster) start once and its tests keep their order.
SPREAD = {
    "tests/integration/test_faults.py",
    "tests/integration/test_storage_faults.py",
    "tests/integration/test_matching_privacy.py",
    "tests/integration/test_operations.py",
    "tests/integration/test_report_signatures.py",
    "tests/integration/test_connection_errors.py",
    "tests/integration/test_plaintext_crosscheck.py",
}
# The longest modules, longest first: they start first, so that no worker begins one
# while the others are nearly done.
FIRST = (
    "tests/integration/test_spark_engine.py",
    "tests/integration/test_spark_cli.py",
    "tests/integration/test_matching_privacy.py",
    "tests/integration/test_faults.py",
    "tests/integration/test_tutorial.py",
    "tests/integration/test_cli.py",
    "tests/integration/test_storage_faults.py",
    "tests/integration/test_interrupt.py",
    "tests/integration/test_operations.py",
    "tests/integration/test_plaintext_crosscheck.py",
    "tests/integration/test_report_signatures.py",
)
TMPFS = Path("/dev/shm")  # noqa: S108 - only as mkdtemp's parent: a private new directory
TMPFS_NEEDED = 1 << 30  # bytes free; a run writes well under 100 MB, containers may give 64 MB


REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Byte-code for the editable install and the test modules, one BLAS thread, then
    temporary directories on tmpfs.

    The suite starts about 150 ``cleanroom`` and ``cleanroom-client`` processes; where
    ``PYTHONDONTWRITEBYTECODE`` is set, each would compile cleanroom's 60-odd modules from
    source again (0.1 CPU-s each), so they are compiled once here. Each xdist worker would
    likewise rewrite the asserts of every test module at each run (2.5 CPU-s per worker);
    pytest caches the rewritten modules only where this process may write byte-code.

    One OpenBLAS thread in the workers and every process they start: numpy's OpenBLAS
    starts a thread per core as it loads (0.1 CPU-s per process on 2 cores, more with more
    cores), and nothing here multiplies matrices large enough to use them.

    Temporary directories on tmpfs unless --basetemp says otherwise: the state databases
    commit with ``synchronous=FULL``, and an fsync per commit on a disk (a busy one above
    all) made sessions wait far longer than they compute. Runs in the controller before
    pytest makes its temporary directory factory; xdist gives each worker a subdirectory."""
    sys.dont_write_bytecode = False  # only this process: the rewritten test modules
    if hasattr(config, "workerinput"):
        return
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    for package in ("cleanroom", "clients"):
        compileall.compile_dir(REPOSITORY / package, quiet=1)
    if config.option.basetemp or not TMPFS.is_dir():
        return
    if shutil.disk_usage(TMPFS).free < TMPFS_NEEDED:
        return
    config.option.basetemp = tempfile.mkdtemp(prefix="cleanroom-tests-", dir=TMPFS)
    config.add_cleanup(lambda: shutil.rmtree(config.option.basetemp, ignore_errors=True))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first (xdist hands out work in this order, given
    ``--no-loadscope-reorder``)."""
    rank = {module: i for i, module in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(module_of(item.nodeid), len(FIRST)))


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection built (modules, items, fixtures' definitions) lives for the whole run:
    moved out of the garbage collector's sight, so that its full collections stop walking it
    again and again (half of the 4 CPU-s the workers spent collecting garbage)."""
    gc.freeze()


def module_of(nodeid: str) -> str:
    """The test's module as pytest names it, e.g. ``tests/integration/test_cli.py``."""
    return nodeid.split("::")[0]


class ModulesAndSpreadTests(LoadScopeScheduling):  # type: ignore[misc]
    """``--dist loadscope`` (one module per unit of work) but each test of a SPREAD module
    its own unit. (``--dist loadgroup`` would say this with marks, but it renames the test
    ids through an attribute that pytest 9 no longer reads, so it groups nothing.)"""

    def _split_scope(self, nodeid: str) -> str:
        if module_of(nodeid) in SPREAD:
            return nodeid
        scope: str = super()._split_scope(nodeid)
        return scope


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(
    config: pytest.Config, log: Producer
) -> ModulesAndSpreadTests | None:
    if config.getvalue("dist") != "loadscope":
        return None
    return ModulesAndSpreadTests(config, log)


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
