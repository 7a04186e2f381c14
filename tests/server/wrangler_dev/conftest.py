"""The fake edge over real TLS, in front of the real app on the scripted engines.

    client --HTTPS--> Edge (uvicorn, TLS, a free port) --HTTP--> create_app(...) (uvicorn)

Both run as `wrangler-dev` runs them (server.wrangler_dev.run.serving); only the port differs
from 443, which wrangler alone needs.
"""

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from server.app import create_app
from server.wrangler_dev.certs import TLSFiles, ensure_certificates
from server.wrangler_dev.cloudflare_api import PreviewSession
from server.wrangler_dev.edge import Edge
from server.wrangler_dev.forward import Forwarder
from server.wrangler_dev.listener import HOST, open_socket
from server.wrangler_dev.run import serving
from tests.support.app import TOKEN, make_settings
from tests.support.fake_engine import FakeEngine


@dataclass(frozen=True)
class RunningEdge:
    url: str  # https://127.0.0.1:<port>
    session: PreviewSession
    tls: TLSFiles

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=30)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.tls.ca)

    def binding_headers(self) -> dict[str, str]:
        """What wrangler's proxy adds to every binding call: the run's preview token."""
        return {"cf-workers-preview-token": self.session.preview_token}


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return ensure_certificates(tmp_path_factory.mktemp("wrangler-dev"))


@pytest.fixture
def server_url(engines: dict[str, FakeEngine]) -> Iterator[str]:
    """The real app, with API tokens, over HTTP on a free loopback port."""
    sock = open_socket(HOST, 0)
    with sock, serving(create_app(make_settings(), engines=engines), sock, None):
        yield f"http://{HOST}:{sock.getsockname()[1]}"


@contextmanager
def running_edge(server_url: str, token: str | None, tls: TLSFiles) -> Iterator[RunningEdge]:
    """The edge of a `wrangler-dev --server server_url --token token` run."""
    session = PreviewSession()
    sock = open_socket(HOST, 0)
    with sock, serving(Edge(session, Forwarder.create(server_url, token)), sock, tls):
        yield RunningEdge(f"https://{HOST}:{sock.getsockname()[1]}", session, tls)


@pytest.fixture
def edge(server_url: str, tls: TLSFiles) -> Iterator[RunningEdge]:
    with running_edge(server_url, TOKEN, tls) as running:
        yield running


@pytest.fixture
def edge_to_nowhere(tls: TLSFiles) -> Iterator[RunningEdge]:
    """An edge whose server is down: a port that was free a moment ago."""
    sock = open_socket(HOST, 0)
    port = sock.getsockname()[1]
    sock.close()
    with running_edge(f"http://{HOST}:{port}", TOKEN, tls) as running:
        yield running
