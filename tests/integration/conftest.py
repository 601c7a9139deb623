"""Brand sites for gRPC tests: a real server with mutual TLS on port 0."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from support import Deployment, deploy_site


@pytest.fixture
def deploy(tmp_path, certificates) -> Iterator[Callable[..., Deployment]]:
    """Build sites on demand; every server is stopped at the end of the test."""
    started: list[Deployment] = []

    def build(**options: object) -> Deployment:
        deployed = deploy_site(tmp_path / f"site{len(started)}", certificates, **options)
        started.append(deployed)
        return deployed

    yield build
    for deployed in started:
        deployed.server.stop(grace=None)
