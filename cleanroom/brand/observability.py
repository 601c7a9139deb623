"""What the brand's operator can watch: Prometheus metrics and JSON-lines logs.

Metrics are opt-in (``serve --metrics-listen`` or ``[server] metrics_listen``) and served
in the Prometheus text format by ``prometheus-client`` on their own port, which is never
the gRPC port. They describe sessions only by contract, outcome and a reason category, and
sizes as the partner's declared record count, which the brand learns in every Hello anyway
(docs/threat-model.md): no identifier, report figure or peer address is exported.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cleanroom.errors import (
    AuthenticationError,
    ConnectionLostError,
    ContractError,
    CryptoError,
    InputError,
    IntegrityError,
    PolicyError,
    ProtocolError,
    StorageError,
)

UNKNOWN_CONTRACT = "-"  # a label for refusals before a contract the brand serves is named

# Most specific first: the reason category a session ended with, a bounded label set.
_REASONS: list[tuple[type[BaseException], str]] = [
    (CryptoError, "crypto"),
    (ProtocolError, "protocol"),
    (ContractError, "contract"),
    (AuthenticationError, "authentication"),
    (PolicyError, "policy"),
    (StorageError, "storage"),
    (IntegrityError, "integrity"),
    (InputError, "input"),
    (ConnectionLostError, "connection"),
]


def reason_label(error: BaseException | None, specific: str | None = None) -> str:
    """``specific`` (e.g. ``hello_timeout``, ``shutdown``) if given, else the error's category."""
    if specific is not None:
        return specific
    for kind, label in _REASONS:
        if isinstance(error, kind):
            return label
    return "internal"


class SessionMetrics:
    """The server's counters, in a registry of its own (several servers may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.started = Counter(
            "cleanroom_sessions_started",
            "Sessions opened (Hello accepted, budget reserved).",
            ["contract"],
            registry=self.registry,
        )
        self.released = Counter(
            "cleanroom_sessions_released",
            "Sessions that released their report.",
            ["contract"],
            registry=self.registry,
        )
        self.refused = Counter(
            "cleanroom_sessions_refused",
            "Streams refused before a session opened, by reason.",
            ["contract", "reason"],
            registry=self.registry,
        )
        self.aborted = Counter(
            "cleanroom_sessions_aborted",
            "Opened sessions that ended without a release, by reason.",
            ["contract", "reason"],
            registry=self.registry,
        )
        self.running = Gauge(
            "cleanroom_sessions_running",
            "Session streams being served now.",
            registry=self.registry,
        )
        self.duration = Histogram(
            "cleanroom_session_duration_seconds",
            "Wall time of each session stream, by outcome.",
            ["contract", "outcome"],
            buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400, 86400),
            registry=self.registry,
        )
        self.partner_records = Histogram(
            "cleanroom_session_partner_records",
            "Record count each partner declared in its Hello.",
            ["contract"],
            buckets=(1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9),
            registry=self.registry,
        )
        self._http: Any = None  # prometheus_client's WSGI server, once serving

    def watch_budget(self, budget: Callable[[], Iterable[tuple[str, float]]]) -> None:
        """Export ``budget()`` (contract id, epsilon left) pairs, read at each scrape."""
        self.registry.register(_BudgetCollector(budget))

    def serve(self, listen: str, what: str) -> int:
        """Serve ``/metrics`` on HOST:PORT (port 0 picks one); returns the bound port.
        ``what`` names the setting in the error if it cannot listen there."""
        host, _, port = listen.rpartition(":")
        try:
            server, _thread = start_http_server(int(port), host.strip("[]"), registry=self.registry)
        except OSError as error:
            raise InputError(
                f"{what} = {listen!r}: cannot listen there ({error.strerror or error}): the port "
                "is in use or the address is not this machine's"
            ) from None
        self._http = server
        return int(server.server_port)

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()


class _BudgetCollector(Collector):
    """Budget left per contract, read from the state database at each scrape."""

    def __init__(self, budget: Callable[[], Iterable[tuple[str, float]]]) -> None:
        self._budget = budget

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "cleanroom_budget_remaining_epsilon",
            "Privacy budget (epsilon) neither spent nor reserved by a running session.",
            labels=["contract"],
        )
        try:
            for contract_id, left in self._budget():
                family.add_metric([contract_id], left)
        except StorageError as error:
            logging.getLogger("cleanroom.server").warning("metrics: %s", error)
        yield family


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC), level, message, and the session's fields when known."""

    converter = time.gmtime  # type: ignore[assignment]

    FIELDS = (
        "event",
        "contract_id",
        "session_id",
        "partner",
        "outcome",
        "reason",
        "detail",
        "duration_s",
        "partner_records",
    )

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in self.FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, sort_keys=True)


def configure_logging(log_format: str, stream: TextIO) -> None:
    """The server's log on ``stream``: plain lines, or JSON lines for a log collector."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonLines()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
