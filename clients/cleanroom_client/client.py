"""The partner's client: run one clean-room session against a brand's server.

    from cleanroom_client import Client
    client = Client("brand.example.com:50051", contract="contract.toml",
                    certificate="newsco.crt", private_key="newsco.key",
                    server_certificate="acme.crt", state="partner-state.db")
    report = client.run("audience.parquet", columns={"email": "EMAIL"})
    report.to_pandas()

Nothing but encrypted elements, ElGamal sums and noisy counts leaves this machine; the
audience file is read here and never uploaded. The session runs in
:mod:`cleanroom.transport.partner`, which ``cleanroom demo`` shares; this is its face for
library users, whose errors name these parameters.
"""

from __future__ import annotations

import os

from cleanroom.contract import Contract
from cleanroom.transport.grpc import DEFAULT_IDLE_TIMEOUT
from cleanroom.transport.partner import (
    AGGREGATING,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_STATE,
    INTERRUPTED,
    PARAMETERS,
    RECEIVING,
    SENDING,
    PartnerClient,
    Progress,
    UnsavedReportError,
)

__all__ = [
    "AGGREGATING",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_STATE",
    "INTERRUPTED",
    "RECEIVING",
    "SENDING",
    "Client",
    "Progress",
    "UnsavedReportError",
]


class Client(PartnerClient):
    """A partner's connection settings for one contract; :meth:`run` runs one session,
    :meth:`prepare` reads the audience ahead of it, :meth:`recover` records a report the
    state database lacks."""

    def __init__(
        self,
        server: str,
        *,
        contract: str | os.PathLike[str] | Contract,
        certificate: str | os.PathLike[str] | None = None,
        private_key: str | os.PathLike[str] | None = None,
        server_certificate: str | os.PathLike[str] | None = None,
        state: str | os.PathLike[str] = DEFAULT_STATE,
        insecure: bool = False,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        workers: int | None = None,
        engine: str = "local",
        spark_scratch: str | None = None,
    ) -> None:
        """``certificate``, ``private_key``: this partner's pinned certificate and its key;
        ``server_certificate``: the brand's, as the contract pins it (all three PEM files;
        none with ``insecure=True``, plain TCP to a loopback server only);
        ``connect_timeout``: seconds the server has to answer before the session starts;
        ``idle_timeout``: seconds a session may go without a message either way;
        ``workers``: threads for the per-record crypto (default or 0: every core);
        ``engine="spark"``: prepare and encrypt the audience as Spark jobs
        (:mod:`cleanroom.lists.spark`), the audience being a Parquet or CSV path,
        ``table:NAME`` or a Spark DataFrame; ``spark_scratch``: where those jobs write each
        session's elements (default: a local temporary directory)."""
        super().__init__(
            server,
            contract=contract,
            certificate=certificate,
            private_key=private_key,
            server_certificate=server_certificate,
            state=state,
            insecure=insecure,
            idle_timeout=idle_timeout,
            connect_timeout=connect_timeout,
            workers=workers,
            engine=engine,
            spark_scratch=spark_scratch,
            names=PARAMETERS,
        )
