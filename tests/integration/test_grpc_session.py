"""Real gRPC with mutual TLS on port 0: a brand server from a config file and the client library."""

from __future__ import annotations

import grpc
import pytest
from cleanroom_client import Client
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cleanroom.errors import AuthenticationError, ConnectionLostError, ContractError, PolicyError
from cleanroom.store.state import StateStore


@pytest.fixture
def deployment(deploy):
    return deploy()


def test_session_over_mutual_tls_gives_both_sides_the_same_report(deployment):
    report = deployment.client().run(deployment.directory / "audience.csv")
    brand_copy = deployment.brand_store().report(report.session_id)
    assert brand_copy == report
    partner_copy = StateStore(deployment.directory / "partner-state.db").report(report.session_id)
    assert partner_copy == report
    assert report.overlap and report.overlap > 50
    assert report.to_pandas().shape[0] == 6 * 3
    assert deployment.brand_store().verify_audit() >= 4


def test_progress_covers_every_phase_with_its_total(deployment):
    """Each phase's amounts add up to the total it announced: a bar that ends full."""
    calls: list[tuple[str, int, int | None]] = []
    client = deployment.client()
    prepared = client.prepare(deployment.directory / "audience.csv")
    report = client.run(prepared, progress=lambda *call: calls.append(call))
    phases = {phase for phase, _, _ in calls}
    assert phases == {"receiving brand data", "sending our records", "aggregating"}
    for phase in phases:
        totals = {total for p, _, total in calls if p == phase}
        assert len(totals) == 1 and None not in totals, phase
        assert sum(amount for p, amount, _ in calls if p == phase) == totals.pop(), phase
    records = {total for p, _, total in calls if p == "sending our records"}
    assert records == {prepared.size} == {report.to_dict()["partner_size"]}


def test_health_service_reports_serving(deployment):
    ca = (deployment.directory / "certs/acme.crt").read_bytes()
    credentials = grpc.ssl_channel_credentials(
        ca,
        (deployment.directory / "certs/newsco.key").read_bytes(),
        (deployment.directory / "certs/newsco.crt").read_bytes(),
    )
    with grpc.secure_channel(
        deployment.address, credentials, options=[("grpc.ssl_target_name_override", "acme")]
    ) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_a_contract_that_differs_by_one_byte_is_refused(deployment):
    original = (deployment.directory / "contract.toml").read_text()
    (deployment.directory / "edited.toml").write_text(
        original.replace("min_overlap = 0", "min_overlap = 1")
    )
    with pytest.raises(ContractError, match="contract hash mismatch"):
        deployment.client("edited.toml").run(deployment.directory / "audience.csv")
    assert deployment.brand_store().budget_spent("acme-x-newsco-demo") == 0


def test_exhausted_budget_is_refused_and_nothing_is_spent(deploy):
    deployed = deploy(epsilon=1.0, epsilon_total=1.0)
    deployed.client().run(deployed.directory / "audience.csv")
    with pytest.raises(PolicyError, match="budget exhausted"):
        deployed.client().run(deployed.directory / "audience.csv")
    assert deployed.brand_store().budget_spent("acme-x-newsco-demo") == pytest.approx(1.0)


def test_partner_certificate_not_pinned_by_the_contract_is_refused_before_connecting(deployment):
    with pytest.raises(AuthenticationError, match=r"parties\.partner\.certificate_sha256"):
        deployment.client(
            certificate=deployment.directory / "certs/intruder.crt",
            private_key=deployment.directory / "certs/intruder.key",
        )


def test_wrong_server_certificate_is_refused(deployment):
    with pytest.raises(AuthenticationError, match=r"parties\.brand\.certificate_sha256"):
        deployment.client(server_certificate=deployment.directory / "certs/intruder.crt")


def test_server_down_is_a_connection_error_and_spends_nothing(deployment):
    deployment.server.stop(grace=None).wait()
    with pytest.raises(ConnectionLostError, match="cannot reach the brand server"):
        deployment.client().run(deployment.directory / "audience.csv")
    assert (
        StateStore(deployment.directory / "partner-state.db").budget_spent("acme-x-newsco-demo")
        == 0
    )


def test_list_below_min_set_size_is_refused(deploy):
    deployed = deploy(min_set_size=100_000)
    with pytest.raises(PolicyError, match="min_set_size"):
        deployed.client().run(deployed.directory / "audience.csv")


def test_refusals_at_hello_are_audited(deployment):
    original = (deployment.directory / "contract.toml").read_text()
    (deployment.directory / "edited.toml").write_text(
        original.replace("min_overlap = 0", "min_overlap = 2")
    )
    with pytest.raises(ContractError):
        deployment.client("edited.toml").run(deployment.directory / "audience.csv")
    refused = [e for e in deployment.brand_store().audit_entries() if e["event"] == "refused"]
    assert refused and "contract hash mismatch" in refused[-1]["detail"]["reason"]
    assert deployment.brand_store().verify_audit() == len(deployment.brand_store().audit_entries())


def test_the_library_runs_on_a_dataframe_and_an_arrow_table(deployment):
    import pandas as pd
    import pyarrow as pa

    frame = pd.read_csv(deployment.directory / "audience.csv", dtype=str, keep_default_na=False)
    from_frame = deployment.client().run(frame)
    from_arrow = deployment.client().run(pa.Table.from_pandas(frame))
    assert from_frame.overlap == from_arrow.overlap
    assert from_frame.to_pandas()["count"].tolist() == from_arrow.to_pandas()["count"].tolist()


def test_insecure_is_refused_off_loopback(deployment):
    from cleanroom.errors import InputError

    with pytest.raises(InputError, match="loopback"):
        Client("203.0.113.7:50051", contract=deployment.directory / "contract.toml", insecure=True)


def test_an_expired_contract_is_refused_before_connecting(deploy, tmp_path):
    site = deploy(expires="2020-01-01")
    with pytest.raises(ContractError, match="expired on 2020-01-01"):
        site.client().run(site.directory / "audience.csv")
