"""The batch runner: its background thread and native threads give exactly what inline gives, and
a party is one process (nothing left behind by `kill -9`, no `__main__` guard needed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cleanroom.brand.demo import synthetic_lists
from cleanroom.crypto.batches import INLINE, BatchRunner
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.protocol.brand import BrandSession
from cleanroom.protocol.partner import PartnerSession
from cleanroom.store.state import StateStore
from cleanroom.transport.inprocess import run_in_process

BRAND_COLUMNS = {
    "email": "email",
    "email_sha256": "email_sha256",
    "phone": "phone",
    "segment": "tier",
}


@pytest.fixture(scope="module")
def pool():
    engine = BatchRunner(workers=2)
    yield engine
    engine.close()


def released(contract, lists, tmp_path, brand_engine, partner_engine, tag):
    brand = BrandSession(
        contract,
        prepare_brand_list(lists.crm, BRAND_COLUMNS, contract),
        StateStore(tmp_path / f"b-{tag}.db"),
        peer="p",
        engine=brand_engine,
    )
    partner = PartnerSession(
        contract,
        prepare_partner_list(lists.audience, None, contract),
        StateStore(tmp_path / f"p-{tag}.db"),
        engine=partner_engine,
    )
    run_in_process(brand, partner)
    report = brand.report.to_dict()
    for field in ("session_id", "transcript_sha256", "released_at"):
        report.pop(field)
    return report


def test_native_threads_release_exactly_the_inline_report(make_contract, tmp_path, pool):
    contract = make_contract(mechanism="none", min_set_size=10, min_overlap=0)
    lists = synthetic_lists(2000, 3000, seed=41)
    inline = released(contract, lists, tmp_path, INLINE, INLINE, "inline")
    pooled = released(contract, lists, tmp_path, pool, pool, "pool")
    assert pooled == inline
    assert pooled["overlap"]["total"] > 200


def test_engine_map_keeps_order_and_bounds_work_in_flight(pool):
    results = list(pool.map(pow, ((5000, (i, 2)) for i in range(50))))
    assert results == [i * i for i in range(50)]
    with pytest.raises(ZeroDivisionError):
        pool.submit(5000, divmod, 1, 0).result()


WORKLOAD = """
import sys
from cleanroom.brand.demo import contract_text, synthetic_lists
from cleanroom.crypto.batches import BatchRunner
from cleanroom.privacy.calibration import parse_contract
from cleanroom.protocol.brand import BrandSession
from cleanroom.transport.inprocess import run_in_process
from cleanroom.lists.local import prepare_brand_list, prepare_partner_list
from cleanroom.protocol.partner import PartnerSession
from cleanroom.store.state import StateStore

contract = parse_contract(contract_text("a" * 64, "b" * 64, mechanism="none",
                                        min_set_size=10, min_overlap=0).encode())
lists = synthetic_lists(1500, 2500, seed=5)  # batches above INLINE_BELOW: threads start
engine = BatchRunner(workers=2)
columns = {"email": "email", "email_sha256": "email_sha256", "phone": "phone", "segment": "tier"}
for run in range(1000):
    brand = BrandSession(contract, prepare_brand_list(lists.crm, columns, contract),
                         StateStore(sys.argv[1] + f"/b{run}.db"), peer="p", engine=engine)
    partner = PartnerSession(contract, prepare_partner_list(lists.audience, None, contract),
                             StateStore(sys.argv[1] + f"/p{run}.db"), engine=engine)
    print("session", run, flush=True)
    run_in_process(brand, partner)
"""


def test_a_killed_party_leaves_no_process_behind(tmp_path):
    """One process per party: `kill -9` of it leaves no worker or resource tracker alive."""
    psutil = pytest.importorskip("psutil")
    script = tmp_path / "workload.py"
    script.write_text(WORKLOAD)
    with subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as party:
        try:
            assert party.stdout is not None
            assert party.stdout.readline().startswith("session 0")
            assert party.stdout.readline().startswith("session 1")  # a whole session ran
            process = psutil.Process(party.pid)
            assert process.num_threads() > 2  # the runner thread and rayon's threads
            assert process.children(recursive=True) == []
        finally:
            party.kill()  # SIGKILL
            party.wait(timeout=30)
    assert not psutil.pid_exists(party.pid)


def test_the_library_example_runs_from_a_plain_script(deploy, tmp_path):
    """docs/howto/library.md's first example, as a script with no `__main__` guard."""
    site = deploy()
    lists_frame = pd.read_csv(site.directory / "audience.csv")
    lists_frame.rename(columns={"email": "EMAIL"}).to_parquet(site.directory / "audience.parquet")
    text = (Path(__file__).parents[2] / "docs/howto/library.md").read_text()
    example = re.search(r"```python\n(.*?)```", text, re.S)
    assert example is not None
    script = example.group(1).replace("brand.example.com:50051", site.address)
    assert "__main__" not in script
    (site.directory / "example.py").write_text(script)
    done = subprocess.run(
        [sys.executable, "example.py"],
        cwd=site.directory,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.splitlines()[0]) > 0  # print(report.overlap)
    sessions = {e["session_id"] for e in site.brand_store().audit_entries() if e["session_id"]}
    assert len(sessions) == 1  # one session at the brand, no stray ones
